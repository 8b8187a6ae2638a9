"""``harness server``: an MLflow tracking server for a cluster whose nodes share no filesystem.

The server keeps runs in a sqlite file and artifacts in a folder, both under ``--store``
(default ``runs/``, the same sqlite file a laptop study uses), and serves the artifacts
itself (``--serve-artifacts``): experiments it creates get ``mlflow-artifacts:/`` locations,
so trials on any node upload their sample grids and checkpoints over HTTP and the report
downloads them the same way. Nothing but the server's own machine touches the files.

It listens on 127.0.0.1 unless ``--host`` says otherwise, and prints a warning when it
listens anywhere else: without ``--auth`` anyone who can reach the port can read and change
every run; with it (:mod:`harness.server_auth`) a request needs the study's credentials, which
still cross the network readable unless a TLS proxy stands in front.

``harness server`` and ``harness ui`` own the MLflow processes they start (the MLflow command,
its uvicorn web workers, its job runner and huey consumers: a dozen processes). They run in a
session of their own, so a Ctrl-C at the terminal reaches only the harness, and
:func:`run_owned` stops the whole session whenever the harness stops: Ctrl-C, SIGTERM, SIGHUP,
an exception, or the server exiting by itself. A busy port is refused before anything starts.
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

from harness import names
from harness.errors import TrackingError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
_WILDCARD_LOCAL = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}
READY_TIMEOUT = 180.0  # seconds; the first start creates the database (slow on a busy machine)
STOP_TIMEOUT = 30.0  # seconds from SIGTERM to SIGKILL; uvicorn and huey stop within a few
#: the signals that stop ``harness server``/``harness ui`` (and with them the MLflow processes)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, what: str = "the MLflow server", auth: bool = False) -> str | None:
    """The warning printed when ``what`` listens on ``host`` beyond this machine; None on
    a loopback address."""
    if is_loopback(host):
        return None
    if auth:
        return (f"warning: {what} listens on {host} with basic authentication over plain "
                "HTTP: the password crosses the network readable by anyone on the path; "
                "expose it only on a private network your cluster's nodes share (or behind "
                "a TLS proxy)")
    return (f"warning: {what} listens on {host}, so every machine that can reach this port "
            "can read, change and delete every run (no authentication without --auth); expose "
            "it only on a private network your cluster's nodes share, behind a firewall")


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
                   allowed_hosts: str | None = None, auth: bool = False,
                   artifacts_root: str | None = None) -> list[str]:
    """The ``mlflow server`` command line for a store folder; ``allowed_hosts`` adds to
    the ``Host`` headers accepted (:func:`allowed_hosts_for`); ``auth`` serves MLflow's
    basic-auth app (:mod:`harness.server_auth` prepares its settings); ``artifacts_root``
    (:func:`shared_artifacts_root`) is where new experiments keep their artifacts, written
    and read there by the clients themselves (the server still serves the artifacts of
    experiments it created without it)."""
    allowed_hosts = allowed_hosts_for(host, port, allowed_hosts)
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
           "--serve-artifacts", "--artifacts-destination", str(store / "mlartifacts"),
           "--host", host, "--port", str(port), "--workers", str(workers)]
    if artifacts_root:
        cmd += ["--default-artifact-root", artifacts_root]
    if _mlflow_major() >= 3:  # uvicorn (MLflow 3): one log line per request drowns the log
        cmd += ["--uvicorn-opts", "--no-access-log"]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    if auth:
        from harness.server_auth import AUTH_APP

        cmd += ["--app-name", AUTH_APP]
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


def shared_artifacts_root(given: str, store: Path) -> str:
    """``--artifacts-root`` as MLflow's ``--default-artifact-root``.

    A URI with a scheme other than ``file`` (``s3://bucket/path``, ``gs://...``) passes as
    given: every client reaches it with its own credentials. A local folder (a path or a
    ``file://`` URI) is made absolute, created, and marked with
    :data:`harness.names.ARTIFACT_ROOT_MARKER`; it must be the same shared folder (NFS and
    the like) at the same path on every node.
    TrackingError when it cannot be created or written."""
    given = given.strip()
    if not given:
        raise TrackingError("--artifacts-root is empty; allowed: a folder every node mounts "
                            "at the same path, or an object store URI such as s3://bucket/path")
    scheme = given.split("://", 1)[0] if "://" in given else ""
    if scheme and scheme != "file":
        return given
    root = Path(given[len("file://"):] if scheme else given).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / names.ARTIFACT_ROOT_MARKER).write_text(
            f"artifacts of the runs of the MLflow server with store {store}\n")
    except OSError as exc:
        raise TrackingError(f"cannot use --artifacts-root {root}: {exc.strerror or exc}; "
                            "allowed: a folder this user can create and write") from None
    return root.as_uri()


def _make_store(store: Path) -> None:
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(f"cannot use --store {store}: {exc.strerror or exc}") from None


#: MLflow's switch for its server's job runner (huey consumers), off unless set
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def spawn(cmd: list[str], quiet: bool = False, env: dict[str, str] | None = None
          ) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new session (and process group) and return at once.

    Its own session: a Ctrl-C at the terminal reaches only this process, which then stops
    the whole session with :func:`stop`, so MLflow's processes never outlive the harness.
    ``quiet`` sends its log to /dev/null instead of stderr; ``env`` adds to the environment."""
    out = subprocess.DEVNULL if quiet else None
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning", **(env or {})}
    # MLflow's job runner (GenAI scoring, trace archival) is seven processes that poll all the
    # time, for jobs no GAN study starts (docs/sweep-scale.md); set the variable to have it
    env.setdefault(JOB_EXECUTION_ENV, "false")
    return subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)


def start(store: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          workers: int = 1, allowed_hosts: str | None = None, quiet: bool = False
          ) -> subprocess.Popen:
    """Start ``mlflow server`` on ``store`` in its own session and return at once (see
    :func:`wait_ready`; :func:`stop` ends it). ``quiet`` sends its log to /dev/null."""
    store = Path(store).resolve()
    check_port(host, port)  # first: a busy port leaves no store folder behind
    _make_store(store)
    return spawn(server_command(store, host, port, workers, allowed_hosts), quiet)


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


def _session_members(sid: int) -> list[tuple[int, int]] | None:
    """``(pid, process group)`` of every live process in session ``sid``; None without /proc.

    The session, not the process group: it also holds a process that moved to a group of its
    own. Zombies are left out: they hold no port, and one orphaned under a container's PID 1
    that never reaps it would otherwise look alive for ever."""
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    members = []
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read().decode("ascii", "replace")
            except OSError:  # exited meanwhile
                continue
            # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses
            state, _ppid, pgrp, session = stat[stat.rindex(")") + 2:].split()[:4]
            if int(session) == sid and state not in ("Z", "X"):
                members.append((int(entry.name), int(pgrp)))
    return members


def _alive(proc: subprocess.Popen) -> bool:
    proc.poll()  # reaps the leader once it exits
    members = _session_members(proc.pid)
    if members is not None:
        return bool(members)
    try:  # no /proc (macOS): the process group stands for the session
        os.killpg(proc.pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_all(proc: subprocess.Popen, sig: int) -> None:
    members = _session_members(proc.pid)
    if members is None:  # no /proc: the process group stands for the session
        members = [(proc.pid, proc.pid)]
    if any(pgrp == proc.pid for _, pgrp in members):
        # the group in one call, so a process forked meanwhile gets it too; only while a
        # live member holds the group's id, which can then belong to no one else
        _kill(-proc.pid, sig)
    for pid, pgrp in members:
        if pgrp != proc.pid:  # moved to a group of its own
            _kill(pid, sig)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)  # a negative pid: that process group
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(proc):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def stop(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """Stop everything :func:`spawn` started: SIGTERM to every process of its session (the
    MLflow command, its web workers, its job runner and consumers), SIGKILL to whatever is
    left after ``timeout`` seconds. Returns once none is left (or 10 s after SIGKILL, for a
    process stuck in the kernel), also when the leader had already exited by itself."""
    if not _alive(proc):
        return
    _signal_all(proc, signal.SIGTERM)
    if not _wait_gone(proc, timeout):
        _signal_all(proc, signal.SIGKILL)
        _wait_gone(proc, 10.0)
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        pass


class _StopRequested(Exception):
    """A stop signal (:data:`STOP_SIGNALS`) reached this process."""


def run_owned(cmd: list[str], local_url: str, ready_message: str, stream=None,
              quiet: bool = False, ready_timeout: float = READY_TIMEOUT,
              env: dict[str, str] | None = None) -> int:
    """Run the server ``cmd`` until it exits or this process is told to stop; its processes
    never outlive this call.

    Starts ``cmd`` with :func:`spawn` (``env`` added to its environment), waits until
    ``local_url``/health answers, prints ``ready_message`` to ``stream`` (default stderr),
    then waits. Ctrl-C, SIGTERM or SIGHUP
    stop it and return 0 (the ordinary way to end a server); a server that exits by itself
    returns its exit code, 1 for 0 (MLflow's command exits 0 even when its web server
    failed). Whatever way this call ends, exceptions included, :func:`stop` ends the whole
    session before it returns. TrackingError when the server exits or stays silent before
    answering."""
    stream = stream or sys.stderr
    state = {"armed": False, "caught": None}

    def on_stop_signal(signum, _frame):
        state["caught"] = signum
        if state["armed"]:
            raise _StopRequested(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers: main thread only
        # installed before the start, disarmed around it: a signal that arrives while Popen
        # runs is remembered, not raised before the process is known and can be stopped
        previous = {sig: signal.signal(sig, on_stop_signal) for sig in STOP_SIGNALS}
    proc = None
    try:
        proc = spawn(cmd, quiet, env)
        state["armed"] = True
        if state["caught"] is not None:
            raise _StopRequested(state["caught"])
        wait_ready(proc, local_url, ready_timeout)
        print(ready_message, file=stream, flush=True)
        code = proc.wait()
        print(f"harness: the MLflow server at {local_url} exited by itself with code {code} "
              "(its log is above)", file=sys.stderr, flush=True)
        return code or 1
    except _StopRequested:
        return 0
    finally:
        state["armed"] = False  # a second Ctrl-C while stopping must not cut the stop short
        try:
            if proc is not None:
                stop(proc)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def serve(store: str | Path, host: str, port: int, workers: int = 1,
          allowed_hosts: str | None = None, stream=None, auth: bool = False,
          artifacts_root: str | None = None) -> int:
    """``harness server``: start, say where studies should log, run until stopped. ``auth``
    requires the credentials of :mod:`harness.server_auth` on every request;
    ``artifacts_root`` (:func:`shared_artifacts_root`) has the clients write and read new
    experiments' artifacts there themselves instead of through the server."""
    stream = stream or sys.stderr
    store = Path(store).resolve()
    check_port(host, port)  # before anything: a busy port leaves nothing behind
    from harness import server_auth

    # before the store folder: a refusal writes nothing
    credentials = server_auth.credentials_from_env() if auth else None
    root = shared_artifacts_root(artifacts_root, store) if artifacts_root is not None else None
    _make_store(store)
    env = server_auth.prepare(store, *credentials) if credentials else None
    warning = bind_warning(host, auth=auth)
    if warning:
        print(warning, file=stream, flush=True)
    uri = f"http://{advertised_host(host)}:{port}"
    artifacts = (f"{store / 'mlartifacts'}" if root is None else
                 f"{root}, written and read by the clients themselves")
    message = (f"MLflow tracking server on {uri} (runs: {store / 'mlflow.db'}, artifacts: "
               f"{artifacts})\n"
               f"  run studies with: harness study FILE --tracking-uri {uri}\n"
               + ("  every client sends MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                  "(set both on every node); a request without them is refused\n" if auth else "")
               + "  (Ctrl-C stops it)")
    return run_owned(server_command(store, host, port, workers, allowed_hosts, auth, root),
                     local_url(host, port), message, stream, env=env)


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The ``mlflow ui`` command line for the tracking store ``uri``."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port)]


def serve_ui(uri: str, host: str, port: int, stream=None) -> int:
    """``harness ui``: the MLflow UI for the store ``uri`` until stopped. The caller checks
    the port (:func:`check_port`) before it opens the store."""
    warning = bind_warning(host, "the MLflow UI")
    if warning:
        print(warning, file=sys.stderr, flush=True)
    message = f"MLflow UI on http://{advertised_host(host)}:{port} (Ctrl-C stops it)"
    return run_owned(ui_command(uri, host, port), local_url(host, port), message,
                     stream or sys.stdout)


def local_url(host: str, port: int) -> str:
    """Where this machine reaches a server listening on ``host:port``."""
    return f"http://{_WILDCARD_LOCAL.get(host) or advertised_host(host)}:{port}"
