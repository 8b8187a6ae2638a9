"""Sweep scale: what a study costs per trial beyond training, on a simulated Ray cluster.

    python benchmarks/sweep_scale.py --trials N --nodes K [--vectorize C] [--faults [--fault-kinds KINDS]] [--out DIR] [--seed S]

Runs one study of exactly N tiny trials (the ``mlp`` GAN with 8-unit layers, 30 steps, one
evaluation at the end, on ring8; Optuna TPE over lr_d and lr_g: N-1 search trials and one
seeds trial) with ``harness study`` on a ``ray.cluster_utils.Cluster`` of K one-CPU worker
nodes, logging to ``harness server --auth``, and the same N trial configurations again in
this process without Tune or MLflow (``run_trial`` with a reporter that keeps nothing). It
prints, and writes into DIR as ``sweep_scale.json`` and ``sweep_scale.md``, per trial:

* overhead in slot-seconds, (wall x slots - sum of train_seconds) / N, a slot being one CPU
  of the worker nodes (with ``--cpu-per-trial 0.5`` two trials share one);
* CPU seconds of the ``harness study`` driver process (its own rusage from ``wait4``), and
  of the trial workers, the tracking server and Ray's own processes (:class:`CpuMeter`,
  from ``/proc`` while the study runs);
* tracking requests and their latency, counted by a small HTTP proxy that the study's
  tracking URI points at (MLflow's uvicorn runs with ``--no-access-log``, so no server log
  counts them); the latency includes the proxy's own relay, a fraction of a millisecond;
* the searcher's time per suggestion: the harness's ``StudySearcher`` (Optuna behind Ray's
  ``OptunaSearch``) against Optuna's own ask/tell, same sampler and space, in this process;
* the wall time of ``harness report`` on the study.

The head node has 0 CPUs: it holds Ray's GCS and the driver, so no trial runs there, the
K worker nodes are exactly the K trial slots, and ``--faults`` can kill any node that runs
trials without killing the cluster.

``--faults`` kills worker nodes (SIGKILL of their processes, then a replacement node) and
restarts the tracking server (same port and store) at random points of the sweep, then
checks MLflow: every trial a child run of the study's parent, FINISHED, exactly once (one
run per Tune trial id and per configuration digest), and ``harness report`` counting every
run. The verdict is printed; a failed check exits 1. Sizes the machine cannot host, and bad
arguments, exit 2 before anything starts.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import ipaddress
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MIN_TRIALS = 2  # the protocol runs at least one search trial and one seeds trial
#: beyond this the sweep runs for days on a few nodes, and TPE's cost per suggestion grows
#: with every trial it has seen: a size no one means
MAX_TRIALS = 5000
#: disk per trial (artifacts: sample grids, generator, config; its rows in sqlite; Tune's
#: checkpoints and trial folder), measured at ~0.14 MB (100 trials: 14 MB) with a 3x margin,
#: plus Ray's session logs and the sqlite files
DISK_PER_TRIAL = 400 * 1024
DISK_FIXED = 1024**3
#: memory: the server, the driver, the head node and this process; per node its raylet and
#: one trial worker (torch and Ray imported: ~1 GB resident)
MEM_FIXED = 3 * 1024**3
MEM_PER_NODE = int(1.5 * 1024**3)
NODE_OBJECT_STORE = 100 * 1024**2  # trials pass nothing through it; Ray's minimum is 75 MiB

STUDY_NAME = "sweep-scale"
SPACE = {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
         "lr_g": {"type": "loguniform", "low": 3e-4, "high": 3e-3}}
TRAIN = {"steps": 30, "eval_every": 30, "eval_samples": 200, "log_every": 10, "batch_size": 32}

#: the table's measures, in order: key, label, unit
MEASURES = [
    ("wall_s", "wall time", "s"),
    ("train_s", "sum of train_seconds", "s"),
    ("slots", "trial slots (worker CPUs)", ""),
    ("concurrency", "trials at a time", ""),
    ("overhead_per_trial_slot_s", "overhead per trial", "slot-s"),
    ("training_share", "training share", ""),
    ("driver_cpu_per_trial_s", "driver CPU per trial", "s"),
    ("worker_cpu_per_trial_s", "trial workers' CPU per trial", "s"),
    ("server_cpu_per_trial_s", "tracking server's CPU per trial", "s"),
    ("ray_cpu_per_trial_s", "Ray's own processes' CPU per trial", "s"),
    ("all_cpu_per_trial_s", "CPU per trial, every process", "s"),
    ("requests_per_trial", "tracking requests per trial", ""),
    ("request_latency_mean_ms", "request latency, mean", "ms"),
    ("request_latency_p95_ms", "request latency, p95", "ms"),
    ("suggestion_ms", "searcher time per suggestion", "ms"),
    ("report_s", "harness report", "s"),
]


class Refused(Exception):
    """An argument or size this machine cannot run: exit code 2, nothing started."""


# ------------------------------------------------------------------------------------
# checks before anything starts


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS)
        return os.cpu_count() or 1


def mem_available() -> int:
    """Bytes the kernel says new processes can use (MemAvailable), without psutil."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_size(args: argparse.Namespace, *, cpus: int | None = None,
               disk_free: int | None = None, mem_free: int | None = None) -> None:
    """Refused when the sweep cannot run here; ``cpus``, ``disk_free`` and ``mem_free``
    default to this machine's (tests pass their own)."""
    if not MIN_TRIALS <= args.trials <= MAX_TRIALS:
        raise Refused(f"--trials {args.trials}: allowed {MIN_TRIALS}..{MAX_TRIALS} (the study "
                      "runs N-1 search trials and 1 seeds trial; more than "
                      f"{MAX_TRIALS} would run for days)")
    vectorize = getattr(args, "vectorize", 0)
    if vectorize and not 2 <= vectorize <= 64:
        raise Refused(f"--vectorize {vectorize}: allowed 0 (one suggestion a trial) or "
                      "2..64 copies a trial")
    cpu = getattr(args, "cpu_per_trial", 1.0)
    if not 0.1 <= cpu <= 1.0:
        raise Refused(f"--cpu-per-trial {cpu:g}: allowed 0.1..1 (each worker node has 1 CPU)")
    cpus = usable_cpus() if cpus is None else cpus
    if not 1 <= args.nodes <= cpus:
        raise Refused(f"--nodes {args.nodes}: allowed 1..{cpus}, one CPU per worker node and "
                      f"this machine has {cpus} usable CPU(s)")
    try:
        ip = ipaddress.ip_address(args.host)
    except ValueError:
        raise Refused(f"--host {args.host!r} is not an IP address; use an address of this "
                      "machine, e.g. 127.0.0.1") from None
    if not 0 <= args.port <= 65535:
        raise Refused(f"--port {args.port}: allowed 0 (a free port) or 1..65535")
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((args.host, args.port))
        except OSError as exc:
            raise Refused(f"cannot serve the tracking server on {args.host}:{args.port}: "
                          f"{exc.strerror or exc}; pick another --port or --host") from None
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if password and len(password) < 12:  # MLflow's policy; `harness server --auth` refuses it
        raise Refused(f"MLFLOW_TRACKING_PASSWORD is {len(password)} characters; the "
                      "authenticated server needs at least 12 (or unset it: the benchmark "
                      "then makes a random one)")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Refused(f"--out {out}: exists and is not an empty folder; the store must be "
                      "fresh (its auth database keeps the first password): name a new folder")
    base = _existing_ancestor(out)
    if not os.access(base, os.W_OK | os.X_OK):
        raise Refused(f"--out {out}: cannot create it, {base} is not writable")
    need_disk = DISK_FIXED + args.trials * DISK_PER_TRIAL
    disk_free = shutil.disk_usage(base).free if disk_free is None else disk_free
    if disk_free < need_disk:
        raise Refused(f"--out {out}: {disk_free / 1024**3:.1f} GiB free on its disk, the MLflow "
                      f"store and Ray need ~{need_disk / 1024**3:.1f} GiB for {args.trials} "
                      "trials; free some space or pick a folder on another disk")
    need_mem = MEM_FIXED + args.nodes * MEM_PER_NODE
    mem_free = mem_available() if mem_free is None else mem_free
    if mem_free < need_mem:
        raise Refused(f"--nodes {args.nodes}: {mem_free / 1024**3:.1f} GiB memory available, "
                      f"the server, driver and {args.nodes} node(s) need "
                      f"~{need_mem / 1024**3:.1f} GiB; use fewer --nodes")


# ------------------------------------------------------------------------------------
# the tracking server and the counting proxy in front of it


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class TrackingServer:
    """``harness server --auth`` as a subprocess; :meth:`restart` keeps its port and store."""

    def __init__(self, store: Path, host: str, port: int, log: Path, env: dict[str, str],
                 artifacts_root: Path | None = None):
        self.store, self.host, self.port, self.log, self.env = store, host, port, log, env
        self.artifacts_root = artifacts_root
        self.url = f"http://{url_host(host)}:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240.0) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "server", "--auth", "--host", self.host,
                 "--port", str(self.port), "--store", str(self.store),
                 *(["--artifacts-root", str(self.artifacts_root)] if self.artifacts_root else [])],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.store.parent)
        from harness.errors import TrackingError
        from harness.server import wait_ready

        try:
            wait_ready(self.proc, self.url, timeout)
        except TrackingError as exc:
            raise RuntimeError(f"harness server: {exc}; its log: {self.log}") from None

    def stop(self) -> None:
        """SIGTERM: the harness stops every MLflow process it started, then exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> float:
        """Stop and start again on the same port and store; returns the seconds it was down."""
        t0 = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - t0


@dataclass
class RequestLog:
    """What the proxy relayed: one ``(seconds, status, method, path)`` per request."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: list[tuple[float, int, str, str]] = field(default_factory=list)

    def add(self, seconds: float, status: int, method: str, path: str) -> None:
        with self.lock:
            self.rows.append((seconds, status, method, path))

    def take(self) -> list[tuple[float, int, str, str]]:
        with self.lock:
            rows, self.rows = self.rows, []
        return rows


_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "content-length"}


class CountingProxy:
    """A relay on a free local port in front of the tracking server that records each
    request's latency. A request the server cannot take (it is restarting) gets 502, what
    a reverse proxy answers and what the harness waits out (``harness.tracking.retry``)."""

    def __init__(self, backend_host: str, backend_port: int):
        log = self.log = RequestLog()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: MLflow's client reuses its connection

            def log_message(self, *a):  # one line per request would drown the terminal
                pass

            def _body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _relay(self):
                t0 = time.perf_counter()
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                # a fresh connection per request: an idle keep-alive one may have been closed
                # by the server, and retrying a request on it could run a POST twice
                conn = http.client.HTTPConnection(backend_host, backend_port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, reason, out_headers = resp.status, resp.reason, resp.getheaders()
                except (OSError, http.client.HTTPException):
                    status, reason, data = 502, "Bad Gateway", b"tracking server unreachable"
                    out_headers = [("Content-Type", "text/plain")]
                finally:
                    conn.close()
                log.add(time.perf_counter() - t0, status, self.command, self.path)
                try:
                    self.send_response(status, reason)
                    for k, v in out_headers:
                        if k.lower() not in _HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # its client's node was killed
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # a client whose node was killed drops its connection mid-request
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------
# the study


def study_yaml(trials: int, seed: int, vectorize: int = 0, cpu: float = 1.0) -> dict:
    """The benchmark's study: N-1 search trials (TPE; with ``vectorize`` random search, whose
    suggestions run ``vectorize`` at a time as the copies of one Tune trial) and 1 seeds
    trial."""
    study = {
        "name": STUDY_NAME,
        "seed": seed,
        "seeds": 1,
        "datasets": ["ring8"],
        # a node killed under a trial costs it one attempt; several kills may hit one trial
        "max_failures": 5,
        "train": dict(TRAIN),
        "search": {"trials": trials - 1, "algorithm": "random" if vectorize else "tpe",
                   "metric": "modes_covered", "space": SPACE},
        "resources": {"cpu": cpu},
        "variants": [{"name": "mlp-tiny", "loss": "non_saturating",
                      "model": {"name": "mlp", "params": {"g_hidden": [8], "d_hidden": [8]}}}],
    }
    if vectorize:
        study["vectorize"] = vectorize
    return study


def start_cluster(nodes: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": NODE_OBJECT_STORE})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1, object_store_memory=NODE_OBJECT_STORE)
    cluster.wait_for_nodes()
    return cluster


_PROGRESS = re.compile(r"\] (\d+)/(\d+) trials finished")


def study_progress(log: Path) -> int:
    """Trials finished so far, from the study's own progress lines (no tracking request)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0
    found = _PROGRESS.findall(text)
    return int(found[-1][0]) if found else 0


class FaultInjector:
    """Kills worker nodes and restarts the tracking server once the study has finished
    random fractions of its trials (plus a random delay, so kills land mid-trial).

    :meth:`poll` runs in the main thread, from the loop that waits for the study: Ray's
    ``Cluster.add_node`` installs signal handlers, which only the main thread may do."""

    def __init__(self, cluster, server: TrackingServer, log: Path, trials: int,
                 rng: random.Random, kinds: list[str]):
        self.cluster, self.server, self.log, self.trials, self.rng = cluster, server, log, trials, rng
        self.plan = sorted((rng.uniform(0.15, 0.8), kind) for kind in kinds)
        self.events: list[dict] = []
        self.due: float | None = None  # when the next fault fires, once its trials are done

    def poll(self) -> None:
        if len(self.events) >= len(self.plan):
            return
        fraction, kind = self.plan[len(self.events)]
        finished = study_progress(self.log)
        if self.due is None:
            if finished >= max(1, math.ceil(fraction * self.trials)):
                self.due = time.monotonic() + self.rng.uniform(0.0, 2.0)
        elif time.monotonic() >= self.due:
            self.due = None
            self.events.append(self._inject(kind, finished))

    def _inject(self, kind: str, finished: int) -> dict:
        t0 = time.monotonic()
        if kind == "server":
            down = self.server.restart()
            return {"fault": "server restart", "after_trials": finished, "down_s": round(down, 1)}
        node = self.rng.choice(sorted(self.cluster.worker_nodes, key=lambda nd: nd.node_id))
        self.cluster.remove_node(node, allow_graceful=False)
        self.cluster.add_node(num_cpus=1, object_store_memory=NODE_OBJECT_STORE)
        return {"fault": "node killed and replaced", "after_trials": finished,
                "node": node.node_id[:12], "replace_s": round(time.monotonic() - t0, 1)}


def run_study(study_file: Path, address: str, uri: str, cwd: Path, env: dict[str, str],
              log: Path, timeout: float, tick=None) -> tuple[int, float, float]:
    """``harness study`` as a subprocess: ``(exit code, wall seconds, CPU seconds)``, the
    CPU from ``wait4``, i.e. the driver process alone (Ray's processes are the cluster's)."""
    cmd = [sys.executable, "-m", "harness.cli", "study", str(study_file), "--address", address,
           "--tracking-uri", uri, "--no-report"]
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    deadline = t0 + timeout
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"harness study ran longer than --timeout {timeout:g}s")
            if tick is not None:
                tick()
            time.sleep(0.2)
    except BaseException:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C: the study ends its runs and Ray
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - t0, usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds (user + system) spent by every process of the machine while the study
    runs, by group: the trial workers (Ray's worker processes), the tracking server
    (MLflow's server, its web server and job runners), the study's driver, Ray's own
    processes (raylets, GCS, agents) and the rest. Read from ``/proc`` about once a second
    (:meth:`poll`, from the loop that waits for the study); a process's CPU counts from its
    first reading, or from zero when it started after the first, to its last, so up to a
    second of a process that ended between readings is missed. A process is grouped by
    every command line it showed (a Ray worker renames itself for each task)."""

    GROUPS = ("workers", "server", "driver", "ray", "other")

    def __init__(self, period: float = 1.0):
        self.period, self.next = period, 0.0
        self.hz = os.sysconf("SC_CLK_TCK")
        self.first: dict[int, float] | None = None
        self.last: dict[int, float] = {}
        self.names: dict[int, set[str]] = {}

    @staticmethod
    def group(cmds: set[str]) -> str:
        def any_(*parts: str) -> bool:
            return any(p in c for c in cmds for p in parts)

        programs = {c.split(" ", 1)[0] for c in cmds}
        if (any(c.startswith("ray::") for c in cmds)
                or any_("default_worker.py", "setup_worker.py")
                and not any(p.endswith(("/raylet", "/gcs_server")) for p in programs)):
            return "workers"  # a worker names the raylet in its arguments, and vice versa
        if any_("raylet", "gcs_server", "/ray/dashboard", "/ray/_private/log_monitor",
                "/ray/autoscaler"):
            return "ray"
        if any_("mlflow server", "harness.cli server", "uvicorn", "huey", "gunicorn"):
            return "server"
        if any_("harness.cli study"):
            return "driver"
        if any_("/ray/"):
            return "ray"
        return "other"

    def read(self) -> dict[int, tuple[float, str]]:
        seen = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace").strip()
            except OSError:  # ended while read
                continue
            fields = stat.rsplit(")", 1)[1].split()
            seen[int(entry.name)] = ((int(fields[11]) + int(fields[12])) / self.hz, cmd)
        return seen

    def poll(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next:
            return
        self.next = now + self.period
        seen = self.read()
        if self.first is None:
            self.first = {pid: cpu for pid, (cpu, _) in seen.items()}
        for pid, (cpu, cmd) in seen.items():
            self.last[pid] = cpu
            if cmd:
                self.names.setdefault(pid, set()).add(cmd)

    def totals(self) -> dict[str, float]:
        out = dict.fromkeys(self.GROUPS, 0.0)
        me = os.getpid()
        for pid, cpu in self.last.items():
            if pid == me:  # this process: the relay (and idle waiting), not the study
                continue
            spent = cpu - (self.first or {}).get(pid, 0.0)
            out[self.group(self.names.get(pid, set()))] += max(0.0, spent)
        return out


# ------------------------------------------------------------------------------------
# after the study: MLflow's verdict, the report, the bare trials, the searcher


def study_runs(client) -> tuple[object, list]:
    from harness import names
    from harness.tracking import child_runs

    exp = client.get_experiment_by_name(STUDY_NAME)
    if exp is None:
        raise RuntimeError(f"the study made no MLflow experiment {STUDY_NAME!r}")
    parents = client.search_runs([exp.experiment_id], f"tags.{names.TAG_KIND} = 'study'")
    if len(parents) != 1:
        raise RuntimeError(f"expected one parent run in a fresh store, found {len(parents)}")
    parent = parents[0]
    return parent, child_runs(client, exp.experiment_id, parent.info.run_id)


def verdict(parent, runs: list, trials: int, report_ids: set[str] | None) -> list[str]:
    """Every way the study's record differs from N trials each FINISHED exactly once."""
    from collections import Counter

    from harness import names

    problems = []
    if parent.info.status != "FINISHED":
        problems.append(f"the parent run is {parent.info.status}")
    if len(runs) != trials:
        problems.append(f"{len(runs)} child runs for {trials} trials")
    statuses = Counter(r.info.status for r in runs)
    for status, n in sorted(statuses.items()):
        if status != "FINISHED":
            problems.append(f"{n} child run(s) {status}")
    for tag in (names.TAG_TRIAL_ID, names.TAG_CONFIG_DIGEST):
        values = Counter(r.data.tags.get(tag) for r in runs)
        if None in values:
            problems.append(f"{values.pop(None)} child run(s) without a {tag} tag")
        dups = {v: n for v, n in values.items() if n > 1}
        if dups:
            problems.append(f"{len(dups)} {tag}(s) with several runs: "
                            + ", ".join(f"{v} x{n}" for v, n in sorted(dups.items())[:5]))
    bare = sum(not set(SPACE) <= set(r.data.params) for r in runs)
    if bare:
        problems.append(f"{bare} child run(s) without their searched params "
                        f"({', '.join(SPACE)})")
    failed = sum(r.data.tags.get(names.TAG_STATUS) == names.STATUS_FAILED for r in runs)
    if failed:
        problems.append(f"{failed} child run(s) with status tag 'failed'")
    if report_ids is not None:
        ids = {r.info.run_id for r in runs}
        if report_ids != ids:
            problems.append(f"harness report counts {len(report_ids)} runs, MLflow has "
                            f"{len(ids)} ({len(ids - report_ids)} missing from the report)")
    return problems


def run_report(parent_id: str, uri: str, out: Path, env: dict[str, str], log: Path
               ) -> tuple[float, set[str] | None]:
    """``harness report`` on the study: (wall seconds, run ids in its report.csv)."""
    import csv

    t0 = time.monotonic()
    with open(log, "w") as f:
        code = subprocess.call([sys.executable, "-m", "harness.cli", "report", parent_id,
                                "--tracking-uri", uri, "--out", str(out)],
                               stdout=f, stderr=subprocess.STDOUT, env=env, cwd=out.parent)
    seconds = time.monotonic() - t0
    if code != 0:
        return seconds, None
    with open(out / "report.csv", newline="") as f:
        return seconds, {row["run_id"] for row in csv.DictReader(f)}


def trial_configs(runs: list, study_file: Path) -> list:
    """The TrialConfig of every child run that recorded its searched params, rebuilt from
    the study file, those params, seed and phase; each checked against the run's config
    digest."""
    from harness import names
    from harness.config import load_study
    from harness.resolve import resolve

    spec = load_study(study_file)
    (plan,) = resolve(spec, source=study_file.name, base_dir=study_file.parent)
    cfgs = []
    for run in sorted(runs, key=lambda r: r.info.start_time):
        tags, params = run.data.tags, run.data.params
        if not set(SPACE) <= set(params):  # the verdict names it
            continue
        cfg = plan.base.with_params({k: float(params[k]) for k in SPACE},
                                    seed=int(tags[names.TAG_SEED]), phase=tags[names.TAG_PHASE])
        if cfg.digest() != tags.get(names.TAG_CONFIG_DIGEST):
            raise RuntimeError(f"run {run.info.run_id}: rebuilt config digest {cfg.digest()} "
                               f"!= its tag {tags.get(names.TAG_CONFIG_DIGEST)}")
        cfgs.append(cfg)
    return cfgs


def run_bare(cfgs: list) -> dict[str, float]:
    """The same trials in this process, one after another (one slot, one torch thread, as
    a Ray trial with one CPU): no Tune, no MLflow, no checkpoints."""
    import torch

    from harness.reporting import NullReporter
    from harness.trial import run_trial

    torch.set_num_threads(1)
    cpu0, t0 = time.process_time(), time.monotonic()
    train = sum(run_trial(cfg, NullReporter()).train_seconds for cfg in cfgs)
    return {"wall_s": time.monotonic() - t0, "train_s": train,
            "cpu_s": time.process_time() - cpu0}


def time_searchers(study_file: Path, trials: int, seed: int) -> tuple[float, float]:
    """Seconds per suggestion (suggest + completion) of the harness's StudySearcher and of
    Optuna's ask/tell with the same sampler and space, each over N suggestions."""
    import optuna

    from harness import names
    from harness.config import load_study
    from harness.resolve import resolve
    from harness.searcher import StudySearcher, make_sampler, optuna_distribution

    spec = load_study(study_file)
    plans = resolve(spec, source=study_file.name, base_dir=study_file.parent)
    values = random.Random(seed)
    searcher = StudySearcher(plans, spec.search, spec.seeds, spec.seed)
    t0 = time.perf_counter()
    for i in range(trials):
        config = searcher.suggest(f"t{i}")
        if not isinstance(config, dict):  # None (waiting) or FINISHED: the protocol broke
            raise RuntimeError(  # noqa: TRY004 -- a protocol failure, not a type error
                f"the searcher gave no suggestion {i} of {trials}: {config!r}")
        value = float(values.randint(0, 8))
        searcher.on_trial_complete(f"t{i}", {spec.search.metric: value,
                                             names.HQ_FRACTION: value / 8})
    harness_s = (time.perf_counter() - t0) / trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler(spec.search, plans[0].space, spec.seed))
    dists = {k: optuna_distribution(v) for k, v in plans[0].space.items()}
    t0 = time.perf_counter()
    for _ in range(trials):
        trial = study.ask(dists)
        study.tell(trial, float(values.randint(0, 8)))
    return harness_s, (time.perf_counter() - t0) / trials


# ------------------------------------------------------------------------------------
# the table


def latency_stats(rows: list[tuple[float, int, str, str]]) -> dict[str, float]:
    ok = sorted(s * 1000 for s, status, _, _ in rows if status != 502)
    if not ok:
        return {"mean": math.nan, "p95": math.nan}
    return {"mean": statistics.fmean(ok), "p95": ok[min(len(ok) - 1, int(0.95 * len(ok)))]}


def endpoint_counts(rows: list[tuple[float, int, str, str]]) -> dict[str, int]:
    from collections import Counter

    def endpoint(path: str) -> str:
        path = path.split("?", 1)[0]
        if "/mlflow-artifacts/artifacts/" in path:  # one path per file: group them
            return path.split("/artifacts/", 1)[0] + "/artifacts/…"
        return path

    return dict(Counter(f"{m} {endpoint(p)}" for _, _, m, p in rows).most_common())


def fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table_lines(table: dict[str, dict], nodes: int) -> list[str]:
    head = ["measure", f"sweep (Tune + MLflow, {nodes} node{'s' * (nodes > 1)})",
            "bare (in-process)"]
    rows = [[f"{label} ({unit})" if unit else label, fmt(table[key]["sweep"]),
             fmt(table[key]["bare"])] for key, label, unit in MEASURES]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return out


# ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, required=True, help="trials in the study (N)")
    p.add_argument("--nodes", type=int, required=True,
                   help="worker nodes of one CPU each (K); the head node runs no trials")
    p.add_argument("--faults", action="store_true",
                   help="kill worker nodes and restart the tracking server during the sweep, "
                        "then check every trial finished exactly once")
    p.add_argument("--fault-kinds", default="node,server,node",
                   help="with --faults, the faults in a comma-separated list of node (kill a "
                        "worker node, add a fresh one) and server (restart the tracking "
                        "server); default node,server,node")
    p.add_argument("--out", help="folder for the store, logs and the table (new or empty; "
                                 "default: a new folder under the system's temp folder)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address the tracking server listens on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0,
                   help="the tracking server's port (default 0: a free one)")
    p.add_argument("--vectorize", type=int, default=0, metavar="C",
                   help="random search with the study key vectorize: C (2..64): up to C "
                        "suggestions train as the copies of one Tune trial, each its own "
                        "MLflow run; default 0: TPE, one suggestion a trial")
    p.add_argument("--cpu-per-trial", type=float, default=1.0, metavar="F",
                   help="the CPUs each trial asks Ray for (study key resources.cpu; 0.1..1, "
                        "default 1): 0.5 runs two trials on each one-CPU node")
    p.add_argument("--artifacts", choices=("served", "shared"), default="served",
                   help="served (default): the trials upload artifacts through the tracking "
                        "server; shared: `harness server --artifacts-root` on a folder of this "
                        "machine, as a cluster's shared filesystem, written by the trials "
                        "directly")
    p.add_argument("--seed", type=int, default=0, help="the study's seed and the faults' timing")
    p.add_argument("--timeout", type=float, default=3 * 3600,
                   help="seconds the study may run before it is stopped (default 10800)")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.fault_kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - {"node", "server"})
    if unknown or not kinds:
        p.error(f"--fault-kinds {args.fault_kinds!r}: {', '.join(unknown) or 'empty'} is not "
                "a fault; allowed: node, server (comma-separated)")
    args.fault_kinds = kinds
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out is None:
        import tempfile

        args.out = str(Path(tempfile.gettempdir()) / f"sweep-scale-{os.getpid()}-{int(time.time())}")
    try:
        check_size(args)
    except Refused as exc:
        print(f"sweep_scale: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return sweep(args, out)
    except KeyboardInterrupt:
        print("sweep_scale: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as exc:  # a step failed: its log is named
        print(f"sweep_scale: error: {exc}", file=sys.stderr)
        return 1


def sweep(args: argparse.Namespace, out: Path) -> int:
    from harness.tune_glue import set_ray_env

    base_env = dict(os.environ)  # the subprocesses get the caller's MLflow settings, not ours
    creds = {"MLFLOW_TRACKING_USERNAME": os.environ.get("MLFLOW_TRACKING_USERNAME") or "sweep",
             "MLFLOW_TRACKING_PASSWORD": os.environ.get("MLFLOW_TRACKING_PASSWORD")
             or secrets.token_urlsafe(18)}
    os.environ.update(creds)  # this process's MLflow client (verdict) sends them too
    set_ray_env()  # RAY_AUTH_MODE=disabled, RAY_USAGE_STATS_ENABLED=0, quiet Tune: the nodes inherit
    env = {**base_env, **creds, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    n, k = args.trials, args.nodes
    port = args.port or free_port(args.host)
    study_file = out / "study.yaml"
    import yaml

    study_file.write_text(yaml.safe_dump(study_yaml(n, args.seed, args.vectorize,
                                                    args.cpu_per_trial), sort_keys=False))
    print(f"sweep_scale: {n} trials on {k} worker node(s){' with faults' if args.faults else ''};"
          f" everything under {out}", flush=True)
    server = TrackingServer(out / "store", args.host, port, out / "server.log", env,
                            out / "shared-artifacts" if args.artifacts == "shared" else None)
    proxy = cluster = injector = None
    result: dict = {"trials": n, "nodes": k, "faults": args.faults, "seed": args.seed,
                    "artifacts": args.artifacts,
                    "command": " ".join(["python", "benchmarks/sweep_scale.py", *sys.argv[1:]])}
    try:
        server.start()
        # the proxy relays to a wildcard-bound server through loopback
        backend = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(args.host, args.host)
        proxy = CountingProxy(backend, port)
        cluster = start_cluster(k)
        print(f"  tracking server {server.url} (auth; counted through {proxy.url}), "
              f"Ray cluster {cluster.address}: head 0 CPUs + {k} x 1 CPU", flush=True)
        study_log = out / "study.log"
        if args.faults:
            injector = FaultInjector(cluster, server, study_log, n, random.Random(args.seed),
                                     args.fault_kinds)
        proxy.log.take()  # count the study's requests only
        meter = CpuMeter()
        meter.poll(force=True)

        def tick() -> None:
            meter.poll()
            if injector is not None:
                injector.poll()

        code, wall, driver_cpu = run_study(study_file, cluster.address, proxy.url, out, env,
                                           study_log, args.timeout, tick=tick)
        meter.poll(force=True)
        cpu = meter.totals()
        requests = proxy.log.take()
        cluster.shutdown()
        cluster = None
        print(f"  study exited with code {code} after {wall:.0f}s (log: {study_log})", flush=True)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=server.url)
        parent, runs = study_runs(client)
        report_s, report_ids = run_report(parent.info.run_id, server.url, out / "report", env,
                                          out / "report.log")
        problems = verdict(parent, runs, n, report_ids)
        if code != 0:
            problems.insert(0, f"harness study exited with code {code} (log: {study_log})")
        if report_ids is None:
            problems.append(f"harness report failed (log: {out / 'report.log'})")
        server.stop()  # the bare trials run with nothing of the sweep left on the CPUs
        from harness import names

        train = float(sum(r.data.metrics.get(names.TRAIN_SECONDS, 0.0) for r in runs))
        # a slot is one CPU of the worker nodes, whatever number of trials share it
        # (--cpu-per-trial): the machine's budget, the same for every packing of trials
        slots = k
        concurrency = int(parent.data.metrics.get("concurrency", k))
        print(f"  running the {len(runs)} trials bare, in this process", flush=True)
        bare = run_bare(trial_configs(runs, study_file))
        harness_suggest, optuna_suggest = time_searchers(study_file, n, args.seed)
        latency = latency_stats(requests)
        table = {
            "wall_s": {"sweep": wall, "bare": bare["wall_s"]},
            "train_s": {"sweep": train, "bare": bare["train_s"]},
            "slots": {"sweep": slots, "bare": 1},
            "concurrency": {"sweep": concurrency, "bare": 1},
            "overhead_per_trial_slot_s": {"sweep": (wall * slots - train) / n,
                                          "bare": (bare["wall_s"] - bare["train_s"]) / n},
            "training_share": {"sweep": train / (wall * slots),
                               "bare": bare["train_s"] / bare["wall_s"]},
            # bare: the whole trial's CPU, training included, for scale
            "driver_cpu_per_trial_s": {"sweep": driver_cpu / n, "bare": bare["cpu_s"] / n},
            "worker_cpu_per_trial_s": {"sweep": cpu["workers"] / n, "bare": None},
            "server_cpu_per_trial_s": {"sweep": cpu["server"] / n, "bare": None},
            "ray_cpu_per_trial_s": {"sweep": cpu["ray"] / n, "bare": None},
            # the driver's from wait4 (it has ended when the meter last reads)
            "all_cpu_per_trial_s": {"sweep": (sum(cpu.values()) - cpu["driver"] + driver_cpu) / n,
                                    "bare": bare["cpu_s"] / n},
            "requests_per_trial": {"sweep": len(requests) / n, "bare": 0},
            "request_latency_mean_ms": {"sweep": latency["mean"], "bare": None},
            "request_latency_p95_ms": {"sweep": latency["p95"], "bare": None},
            "suggestion_ms": {"sweep": harness_suggest * 1000, "bare": optuna_suggest * 1000},
            "report_s": {"sweep": report_s, "bare": None},
        }
        result.update(
            table=table, columns=[key for key, _, _ in MEASURES],
            requests={"total": len(requests), "bad_gateway": sum(s == 502 for _, s, _, _ in requests),
                      "by_endpoint": endpoint_counts(requests)},
            cpu_by_group_s=cpu, parent_run_id=parent.info.run_id, study_exit_code=code,
            fault_events=injector.events if injector else [],
            verdict={"ok": not problems, "problems": problems,
                     "runs": len(runs), "report_runs": len(report_ids or ())})
        if args.faults and len(result["fault_events"]) < len(injector.plan):
            result["verdict"]["note"] = (f"{len(result['fault_events'])} of "
                                         f"{len(injector.plan)} faults fired before the study ended")
        lines = table_lines(table, k)
        print("\n" + "\n".join(lines))
        for event in result["fault_events"]:
            print(f"  fault: {event}")
        print(f"verdict: {'every trial FINISHED exactly once, ' if not problems else ''}"
              f"{len(runs)} child runs, report counts {len(report_ids or ())}"
              + ("" if not problems else "; FAILED: " + "; ".join(problems)))
        (out / "sweep_scale.json").write_text(json.dumps(result, indent=2, default=str))
        (out / "sweep_scale.md").write_text(
            f"`{result['command']}`\n\n" + "\n".join(lines) + "\n")
        print(f"  written: {out / 'sweep_scale.json'}, {out / 'sweep_scale.md'}")
        return 0 if not problems else 1
    finally:
        if cluster is not None:
            cluster.shutdown()
        if proxy is not None:
            proxy.close()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
