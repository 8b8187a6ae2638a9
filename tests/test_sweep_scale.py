"""benchmarks/sweep_scale.py: its refusals (exit 2, nothing started) and, in the slow suite,
one CI-sized sweep with faults whose every trial must be FINISHED exactly once."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import names

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sweep_scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sweep_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations there
    spec.loader.exec_module(module)
    return module


def sweep(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.parametrize(("args", "named"), [
    (["--trials", "0", "--nodes", "1"], "--trials 0: allowed 2..5000"),
    (["--trials", "1", "--nodes", "1"], "--trials 1: allowed 2.."),
    (["--trials", "1000000", "--nodes", "1"], "--trials 1000000: allowed 2..5000"),
    (["--trials", "5", "--nodes", "0"], "--nodes 0: allowed 1.."),
    (["--trials", "5", "--nodes", "999"], "--nodes 999: allowed 1.."),
    (["--trials", "5", "--nodes", "1", "--host", "not-an-ip"], "--host 'not-an-ip' is not an IP"),
    (["--trials", "5", "--nodes", "1", "--host", "203.0.113.9"],
     "cannot serve the tracking server on 203.0.113.9:0"),
    (["--trials", "5", "--nodes", "1", "--port", "70000"], "--port 70000: allowed 0"),
    (["--trials", "five", "--nodes", "1"], "argument --trials: invalid int value: 'five'"),
    (["--nodes", "1"], "the following arguments are required: --trials"),
    (["--trials", "5", "--nodes", "1", "--faults", "--fault-kinds", "node,disk"],
     "--fault-kinds 'node,disk': disk is not a fault; allowed: node, server"),
    (["--trials", "5", "--nodes", "1", "--vectorize", "1"], "--vectorize 1: allowed 0"),
    (["--trials", "5", "--nodes", "1", "--vectorize", "65"], "--vectorize 65: allowed 0"),
    (["--trials", "5", "--nodes", "1", "--cpu-per-trial", "2"], "--cpu-per-trial 2: allowed 0.1..1"),
    (["--trials", "5", "--nodes", "1", "--cpu-per-trial", "0"], "--cpu-per-trial 0: allowed 0.1..1"),
])
def test_refusals_exit_2_naming_the_problem_and_start_nothing(tmp_path, args, named):
    out = tmp_path / "out"
    proc = sweep(*args, "--out", str(out), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert named in proc.stderr
    assert proc.stdout == ""
    assert not out.exists()  # refused before the folder, the server or Ray


def test_a_short_password_is_refused_before_the_server_starts(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_PASSWORD": "short"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--trials", "5", "--nodes", "1",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 2
    assert "MLFLOW_TRACKING_PASSWORD is 5 characters" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_busy_port_and_a_used_folder_are_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = sweep("--trials", "5", "--nodes", "1", "--port", str(port), "--out",
                     str(tmp_path / "out"), timeout=60)
    assert proc.returncode == 2 and f"on 127.0.0.1:{port}: " in proc.stderr
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mlflow.db").write_text("")
    proc = sweep("--trials", "5", "--nodes", "1", "--out", str(tmp_path / "used"), timeout=60)
    assert proc.returncode == 2
    assert "exists and is not an empty folder" in proc.stderr


def test_disk_and_memory_limits_name_what_is_needed(bench, tmp_path):
    args = argparse.Namespace(trials=100, nodes=2, host="127.0.0.1", port=0,
                              out=str(tmp_path / "out"))
    bench.check_size(args, cpus=2, disk_free=10 * 1024**3, mem_free=16 * 1024**3)  # fits
    with pytest.raises(bench.Refused, match=r"0\.5 GiB free on its disk, .* need ~1\.0 GiB "
                                            r"for 100 trials"):
        bench.check_size(args, cpus=2, disk_free=512 * 1024**2, mem_free=16 * 1024**3)
    with pytest.raises(bench.Refused, match=r"--nodes 2: 2\.0 GiB memory available, .* need "
                                            r"~6\.0 GiB; use fewer --nodes"):
        bench.check_size(args, cpus=2, disk_free=10 * 1024**3, mem_free=2 * 1024**3)
    with pytest.raises(bench.Refused, match="--nodes 2: allowed 1..1, one CPU per worker node"):
        bench.check_size(args, cpus=1, disk_free=10 * 1024**3, mem_free=16 * 1024**3)
    assert not (tmp_path / "out").exists()


def test_the_study_has_exactly_n_trials(bench):
    from harness.config import parse_study

    spec = parse_study(bench.study_yaml(37, seed=3))
    assert spec.search.trials + spec.seeds == 37 and len(spec.variants) == 1
    assert len(spec.datasets) == 1 and spec.train.eval_every == spec.train.steps  # one evaluation
    vectorized = parse_study(bench.study_yaml(37, seed=3, vectorize=8))
    assert vectorized.search.algorithm == "random" and vectorized.vectorize == 8
    assert parse_study(bench.study_yaml(37, seed=3, cpu=0.5)).resources.cpu == 0.5


@pytest.mark.slow
@pytest.mark.parametrize("artifacts", ["served", "shared"])
def test_a_ci_sized_sweep_with_faults_finishes_every_trial_once(bench, tmp_path, artifacts):
    out = tmp_path / "sweep"
    # the default faults: two worker nodes killed, the tracking server restarted once
    proc = sweep("--trials", "20", "--nodes", "2", "--faults", "--artifacts", artifacts,
                 "--out", str(out), timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "sweep_scale.json").read_text())
    verdict = result["verdict"]
    assert verdict["ok"] and verdict["problems"] == [], verdict
    assert verdict["runs"] == verdict["report_runs"] == 20
    assert "every trial FINISHED exactly once" in proc.stdout
    assert result["fault_events"], "no fault fired during the sweep"
    table = result["table"]
    assert list(table) == result["columns"] == [key for key, _, _ in bench.MEASURES]
    for key in table:
        assert set(table[key]) == {"sweep", "bare"}
        assert table[key]["sweep"] is not None, key
    overhead = table["overhead_per_trial_slot_s"]["sweep"]
    assert math.isfinite(overhead) and overhead > 0
    assert table["requests_per_trial"]["sweep"] > 0
    if artifacts == "shared":  # the trials wrote their files themselves: none went through
        assert result["artifacts"] == "shared"
        written = list((out / "shared-artifacts").rglob(names.ARTIFACT_FINAL_SAMPLES))
        assert len(written) == 20  # one per trial: a retried trial rewrote its own
        assert table["requests_per_trial"]["sweep"] < 7  # 5 a trial, a few more for retries
    md = (out / "sweep_scale.md").read_text()
    for _, label, _ in bench.MEASURES:
        assert label in md



def test_the_cpu_meter_groups_processes_by_every_name_they_showed(bench):
    group = bench.CpuMeter.group
    py = "/usr/bin/python"
    raylet = ("/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=/tmp/x "
              f"--python_worker_command={py} /site-packages/ray/_private/workers/default_worker.py")
    assert group({raylet}) == "ray"
    assert group({f"{py} /site-packages/ray/_private/workers/setup_worker.py --x",
                  "ray::IDLE", "ray::ImplicitFunc.train"}) == "workers"
    assert group({f"{py} /site-packages/ray/_private/workers/default_worker.py --x"}) == "workers"
    # a worker seen before it renamed itself: its arguments name the raylet
    early = (f"{py} /site-packages/ray/_private/workers/default_worker.py "
             "--raylet-name=/tmp/ray/session_1/sockets/raylet --node-ip-address=1.2.3.4")
    assert group({early}) == "workers"
    assert group({f"{py} -m uvicorn --no-access-log mlflow.server.fastapi_app:app"}) == "server"
    assert group({f"{py} -m huey.bin.huey_consumer mlflow.server.jobs"}) == "server"
    assert group({f"{py} -m harness.cli server --auth --port 5000"}) == "server"
    assert group({f"{py} -m harness.cli study s.yaml --address 1.2.3.4:6379"}) == "driver"
    assert group({"/site-packages/ray/core/src/ray/gcs/gcs_server --log_dir=/tmp"}) == "ray"
    assert group({"sshd: root"}) == group(set()) == "other"


def test_the_cpu_meter_counts_a_busy_process_from_its_start(bench):
    """A process started after the first reading counts from zero, to its last reading."""
    import time

    meter = bench.CpuMeter(period=0.0)
    meter.poll(force=True)
    busy = ("import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.6: pass\ntime.sleep(0.5)\n")
    proc = subprocess.Popen([sys.executable, "-c", busy])
    while proc.poll() is None:
        meter.poll(force=True)
        time.sleep(0.05)
    assert proc.pid not in (meter.first or {})
    assert 0.5 <= meter.last[proc.pid] <= 1.5
    assert meter.totals()["other"] >= meter.last[proc.pid]


def test_the_verdict_names_every_way_a_run_is_missing_or_wrong(bench):
    from types import SimpleNamespace as NS

    from harness import names

    def run(i, status="FINISHED", params=True):
        tags = {names.TAG_TRIAL_ID: f"t{i}", names.TAG_CONFIG_DIGEST: f"d{i}"}
        return NS(info=NS(status=status, run_id=f"r{i}"),
                  data=NS(tags=tags, params={"lr_d": "1e-3", "lr_g": "1e-3"} if params else {}))

    parent = NS(info=NS(status="FINISHED"))
    runs = [run(0), run(1)]
    assert bench.verdict(parent, runs, 2, {"r0", "r1"}) == []
    runs = [run(0), run(1, params=False), run(2, status="RUNNING")]
    assert bench.verdict(parent, runs, 2, {"r0"}) == [
        "3 child runs for 2 trials", "1 child run(s) RUNNING",
        "1 child run(s) without their searched params (lr_d, lr_g)",
        "harness report counts 1 runs, MLflow has 3 (2 missing from the report)"]
