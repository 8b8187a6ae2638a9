"""``harness ui``/``harness server`` own the MLflow processes they start: whatever stops the
command (SIGTERM, Ctrl-C, an exception, the server exiting by itself) stops every one of them,
and a busy port is refused (exit 2) before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from harness import server
from harness.errors import TrackingError

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(),
                                reason="process checks read /proc (Linux)")

# A stand-in for MLflow's server, for the fast tests: it starts a child (one that ignores
# SIGTERM when asked) and then answers /health, as MLflow's command does with its workers.
FAKE_SERVER = r"""
import http.server, os, subprocess, sys, threading
port, stubborn, lifetime = int(sys.argv[1]), sys.argv[2] == "1", float(sys.argv[3])
if lifetime:  # then exit 0 by itself, leaving its child behind, as a crashed command would
    threading.Timer(lifetime, os._exit, (0,)).start()
ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if stubborn else ""
child = subprocess.Popen([sys.executable, "-c", "import signal, time; " + ignore +
                          "print('up', flush=True); time.sleep(600)"], stdout=subprocess.PIPE)
child.stdout.readline()  # its signal handler is set: serve only now

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def harness(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...,
    starttime at index 19); None once the process is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else fields


def processes() -> dict[int, list[str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat(int(entry.name))) is not None:
            found[int(entry.name)] = fields
    return found


def in_session(sid: int) -> dict[int, str]:
    """pid -> start time of every live process in session ``sid``."""
    return {pid: f[19] for pid, f in processes().items() if int(f[3]) == sid}


def still_alive(seen: dict[int, str]) -> list[int]:
    """The processes of ``seen`` still running (same pid and start time: not a reused pid)."""
    return [pid for pid, start in seen.items() if (f := stat(pid)) and f[19] == start]


def listening(port: int) -> bool:
    """Whether any socket listens on ``port`` (any address, IPv4 or IPv6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return True
    return False


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status


class Lines:
    """A pipe's lines, read in a thread: the test waits for one without blocking, and the
    pipe never fills up and stalls the writer."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.thread.start()

    def wait_for(self, text: str, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert proc.poll() is None, f"exited with {proc.returncode}: {self.lines}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout:g}s"
            time.sleep(0.2)

    def text(self) -> str:
        self.thread.join(timeout=10)
        return "".join(self.lines)


def fake(port: int, stubborn: bool = False, lifetime: float = 0) -> list[str]:
    return [sys.executable, "-c", FAKE_SERVER, str(port), "1" if stubborn else "0",
            str(lifetime)]


def make_store(tmp_path: Path) -> str:
    from harness.tracking import open_store

    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    open_store(uri)
    return uri


def spying_spawn(monkeypatch) -> list[subprocess.Popen]:
    """Make ``server.spawn`` record what it starts; returns that list."""
    spawned = []
    real_spawn = server.spawn

    def spy(cmd, quiet=False, env=None):
        spawned.append(real_spawn(cmd, quiet, env))
        return spawned[-1]

    monkeypatch.setattr(server, "spawn", spy)
    return spawned


def test_sigterm_to_harness_ui_stops_every_mlflow_process(tmp_path):
    make_store(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        # printed once MLflow answers; mlflow ui starts slowly on a busy machine
        out.wait_for(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C stops it)", proc, 240)
        assert get(f"http://127.0.0.1:{port}/") == 200
        leaders = [pid for pid, f in processes().items() if int(f[1]) == proc.pid]
        assert len(leaders) == 1, leaders  # the MLflow command, leading its own session
        sid = leaders[0]
        assert int(stat(sid)[3]) == sid
        seen = in_session(sid)
        assert len(seen) >= 2, seen  # at least the MLflow command and its uvicorn

        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the harness alone, as `kill PID` does
        proc.wait(timeout=server.STOP_TIMEOUT + 15)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:  # the test failed: leave nothing behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err.text()
    assert not listening(port)
    assert in_session(sid) == {}, f"left running: {in_session(sid)}"
    assert still_alive(seen) == []
    assert stopped_in < server.STOP_TIMEOUT, stopped_in  # SIGTERM did it, not SIGKILL


@pytest.mark.slow
def test_ctrl_c_at_the_terminal_stops_harness_server_and_every_mlflow_process(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "server", "--port", str(port),
                             "--store", str(tmp_path / "store")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        err.wait_for(f"MLflow tracking server on http://127.0.0.1:{port}", proc, 240)
        assert get(f"http://127.0.0.1:{port}/health") == 200
        (sid,) = [pid for pid, f in processes().items() if int(f[1]) == proc.pid]
        seen = in_session(sid)
        assert len(seen) >= 2, seen
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: its foreground group
        proc.wait(timeout=server.STOP_TIMEOUT + 15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err.text() + out.text()
    assert not listening(port)
    assert in_session(sid) == {} and still_alive(seen) == []


def test_ui_on_a_busy_port_exits_2_naming_it_and_starts_nothing(tmp_path):
    uri = make_store(tmp_path)
    db = Path(uri[len("sqlite:///"):])
    before = db.read_bytes()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        pids_before = set(processes())
        proc = harness("ui", "--port", str(port), cwd=tmp_path)
        started = [pid for pid in set(processes()) - pids_before
                   if f"--port\0{port}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        (f"harness: error: cannot serve on 127.0.0.1:{port}: Address already in use; "
         "pick another --port (or --host)")]
    assert proc.stdout == ""
    assert started == []
    assert db.read_bytes() == before


@pytest.mark.parametrize("port", ["0", "70000"])
def test_ui_port_out_of_range_exits_2(tmp_path, port):
    make_store(tmp_path)
    proc = harness("ui", "--port", port, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"harness: error: --port must be 1..65535, got {port}"


class Exploding:
    """A stream whose first write raises, as a closed stdout would."""

    def write(self, text):
        raise RuntimeError("stream gone")

    def flush(self):
        pass


def test_an_exception_in_the_harness_stops_the_whole_session(monkeypatch):
    spawned = spying_spawn(monkeypatch)
    port = free_port()
    before = {sig: signal.getsignal(sig) for sig in server.STOP_SIGNALS}
    with pytest.raises(RuntimeError, match="stream gone"):
        server.run_owned(fake(port), f"http://127.0.0.1:{port}", "ready", Exploding())
    (proc,) = spawned
    assert in_session(proc.pid) == {}
    assert proc.returncode is not None and not listening(port)
    assert {sig: signal.getsignal(sig) for sig in server.STOP_SIGNALS} == before


class SignalsSelf:
    """A stream that sends ``sig`` to this process once the server is ready."""

    def __init__(self, sig):
        self.sig, self.text = sig, ""

    def write(self, text):
        self.text += text
        os.kill(os.getpid(), self.sig)

    def flush(self):
        pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_stops_the_server_and_returns_0(monkeypatch, sig):
    spawned = spying_spawn(monkeypatch)
    port = free_port()
    before = {s: signal.getsignal(s) for s in server.STOP_SIGNALS}
    stream = SignalsSelf(sig)
    assert server.run_owned(fake(port), f"http://127.0.0.1:{port}", "ready", stream) == 0
    assert stream.text.startswith("ready")
    assert in_session(spawned[0].pid) == {} and not listening(port)
    assert {s: signal.getsignal(s) for s in server.STOP_SIGNALS} == before


def test_stop_kills_what_ignores_sigterm_after_the_timeout():
    port = free_port()
    proc = server.spawn(fake(port, stubborn=True), quiet=True)
    try:
        server.wait_ready(proc, f"http://127.0.0.1:{port}", timeout=60)
        assert len(in_session(proc.pid)) == 2
        t0 = time.monotonic()
        server.stop(proc, timeout=1.0)
        took = time.monotonic() - t0
    finally:
        if in_session(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert in_session(proc.pid) == {}
    assert 1.0 <= took < 10, took


def test_the_rest_of_the_session_is_stopped_when_the_server_exits_by_itself(
        monkeypatch, capsys):
    spawned = spying_spawn(monkeypatch)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # exit code 0 after it served: still a failure (MLflow's command exits 0 when uvicorn dies)
    assert server.run_owned(fake(port, lifetime=3), url, "ready", quiet=True) == 1
    assert f"the MLflow server at {url} exited by itself with code 0" in capsys.readouterr().err
    assert in_session(spawned[0].pid) == {}


def test_a_server_that_exits_before_answering_is_an_error():
    # MLflow's command exits 0 when uvicorn cannot bind: that must not pass for success
    cmd = [sys.executable, "-c", "import sys; sys.exit(0)"]
    with pytest.raises(TrackingError, match=r"exited with code 0 before answering at "
                                            r"http://127.0.0.1:1 \(its log is above\)"):
        server.run_owned(cmd, "http://127.0.0.1:1", "ready", quiet=True, ready_timeout=30)
