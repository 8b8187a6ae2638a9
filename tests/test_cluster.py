"""A real 2-node Ray cluster on this machine (``ray.cluster_utils.Cluster``) running a tiny
study that logs to ``harness server`` over HTTP, as on a cluster whose nodes share no
filesystem: every trial is in MLflow, finished, with its artifacts uploaded through the
server, and the trials ran on both nodes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import yaml

from harness import names

pytestmark = pytest.mark.slow

#: one slot per node: two trials at a time can only run one on each node
SLOT = "harness_test_slot"
STUDY = {
    "name": "cluster",
    "seeds": 1,
    "datasets": ["ring8"],
    "resources": {"cpu": 1, "custom": {SLOT: 1}},
    "train": {"steps": 40, "eval_every": 20, "eval_samples": 200, "log_every": 10,
              "batch_size": 32},
    "search": {"trials": 2, "algorithm": "random",
               "space": {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3}}},
    "variants": [{"name": "ns", "loss": "non_saturating",
                  "model": {"name": "mlp", "params": {"g_hidden": [8], "d_hidden": [8]}}}],
}
N_TRIALS = 2 + 1


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """``harness server`` on a free port of 127.0.0.1; yields (uri, the lines it printed)."""
    store = tmp_path_factory.mktemp("server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "server", "--port", str(port),
                             "--store", str(store)], cwd=store, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("MLflow tracking server on "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(240), "\n".join(lines[-30:])
        yield f"http://127.0.0.1:{port}", lines, store
    finally:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C: stops the MLflow server it started
        assert proc.wait(60) == 0
        with pytest.raises(OSError):  # nothing listens any more
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


def test_server_prints_the_uri_and_stays_on_localhost(tracking_server):
    uri, lines, store = tracking_server
    i = next(i for i, line in enumerate(lines) if line.startswith("MLflow tracking server on "))
    assert lines[i].startswith(f"MLflow tracking server on {uri} (runs: {store / 'mlflow.db'}")
    assert lines[i + 1] == f"  run studies with: harness study FILE --tracking-uri {uri}"
    assert not any(line.startswith("warning: ") for line in lines)
    with urllib.request.urlopen(f"{uri}/health", timeout=5) as resp:
        assert resp.status == 200


def test_two_node_study_logs_every_trial_with_artifacts(tracking_server, tmp_path):
    from ray.cluster_utils import Cluster

    from harness.study import run_study
    from harness.tracking import open_store
    from harness.tune_glue import set_ray_env

    uri, _, store = tracking_server
    set_ray_env()  # the nodes' processes inherit the harness's quiet Ray settings
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {SLOT: 1}})
    try:
        cluster.add_node(num_cpus=1, resources={SLOT: 1})
        cluster.wait_for_nodes()
        node_ids = {cluster.head_node.node_id, *(n.node_id for n in cluster.worker_nodes)}
        assert len(node_ids) == 2
        path = tmp_path / "cluster.yaml"
        path.write_text(yaml.safe_dump(STUDY))
        t0 = time.monotonic()
        outcome = run_study(path, address=cluster.address, tracking_uri=uri, workdir=tmp_path,
                            max_concurrent=2)
        print(f"study on 2 nodes: {time.monotonic() - t0:.1f}s")
    finally:
        cluster.shutdown()
    assert not outcome.interrupted and outcome.tracking_uri == uri
    client = open_store(uri, create=False)
    exp = client.get_experiment(outcome.experiment_id)
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # uploaded over HTTP
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [outcome.experiment_id], f"tags.`{names.TAG_PARENT}` = '{outcome.parent_run_id}'")
    assert len(children) == N_TRIALS
    for run in children:
        assert run.info.status == "FINISHED", run.data.tags.get(names.TAG_ERROR)
        assert run.data.tags[names.TAG_HOST] == socket.gethostname()
        assert [m.step for m in client.get_metric_history(run.info.run_id, names.LOSS_D)] == [
            10, 20, 30, 40]
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {names.ARTIFACT_CONFIG, names.ARTIFACT_GENERATOR, names.ARTIFACT_FINAL_SAMPLES,
                names.ARTIFACT_SAMPLES_DIR} <= arts
    assert {r.data.tags[names.TAG_RAY_NODE] for r in children} == node_ids  # both nodes ran trials
    # the artifacts are in the server's store, and the report read them back through it
    assert len(list(store.glob(f"mlartifacts/**/{names.ARTIFACT_FINAL_SAMPLES}"))) == N_TRIALS
    assert (outcome.report["md"].parent / "samples_ring8_ns.png").is_file()  # downloaded
    assert {a.path for a in client.list_artifacts(outcome.parent_run_id)} >= {"report", "study"}
    assert not list(tmp_path.glob("runs/artifacts"))  # nothing went to a local artifact folder
    assert os.environ.get("MLFLOW_TRACKING_URI") is None


#: long enough to be caught mid-way: evaluations (and checkpoints) every 200 steps
KILL_STUDY = {**STUDY, "name": "cluster-kill", "max_failures": 1,
              "train": {**STUDY["train"], "steps": 3000, "eval_every": 200, "log_every": 50}}


def test_a_trial_whose_worker_node_dies_finishes_from_its_checkpoint(tracking_server, tmp_path):
    """Two nodes, one trial slot each; the worker node is killed (its raylet and trial
    processes, SIGKILL) while its trial is mid-way. Tune retries the trial on the node left,
    from its last checkpoint, in the same MLflow run."""
    from ray.cluster_utils import Cluster

    from harness.study import run_study
    from harness.tracking import child_runs, open_store
    from harness.tune_glue import set_ray_env

    uri, _, _ = tracking_server
    set_ray_env()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {SLOT: 1}})
    killed: dict[str, object] = {}
    try:
        worker = cluster.add_node(num_cpus=1, resources={SLOT: 1})
        cluster.wait_for_nodes()
        head_id = cluster.head_node.node_id
        path = tmp_path / "kill.yaml"
        path.write_text(yaml.safe_dump(KILL_STUDY))
        client = open_store(uri, create=False)
        stop = threading.Event()

        def kill_when_mid_way():
            """Watch MLflow; kill the worker node once its trial has logged 2 evaluations."""
            while not stop.wait(0.3):
                exp = client.get_experiment_by_name(KILL_STUDY["name"])
                if exp is None:
                    continue
                for run in client.search_runs([exp.experiment_id],
                                              f"tags.`{names.TAG_RAY_NODE}` = '{worker.node_id}' "
                                              "and attributes.status = 'RUNNING'"):
                    steps = [m.step for m in client.get_metric_history(run.info.run_id,
                                                                       names.MODES_COVERED)]
                    if steps and 400 <= max(steps) < 2400:
                        killed.update(run_id=run.info.run_id, at=max(steps))
                        cluster.remove_node(worker, allow_graceful=False)
                        return

        watcher = threading.Thread(target=kill_when_mid_way, daemon=True)
        watcher.start()
        try:
            outcome = run_study(path, address=cluster.address, tracking_uri=uri,
                                workdir=tmp_path, max_concurrent=2, write_report=False)
        finally:
            stop.set()
            watcher.join(10)
    finally:
        cluster.shutdown()
    assert killed, "the worker node's trial was never seen mid-way"
    assert not outcome.interrupted
    client = open_store(uri, create=False)
    kids = child_runs(client, outcome.experiment_id, outcome.parent_run_id)
    assert len(kids) == N_TRIALS  # no duplicate run for the retried trial
    assert all(r.info.status == "FINISHED" and r.data.metrics[names.STEPS_DONE] == 3000
               and r.data.tags[names.TAG_STATUS] != names.STATUS_FAILED for r in kids)
    run = client.get_run(killed["run_id"])
    assert run.data.tags[names.TAG_RESTARTS] == "1"
    resumed = int(run.data.tags[names.TAG_RESUMED_FROM_STEP])
    # a checkpoint, not step 0: the one before the watcher looked (metrics are logged before
    # the checkpoint is reported) or a later one the trial wrote before the SIGKILL landed
    # (remove_node takes a moment), never the end of training
    assert killed["at"] - 200 <= resumed < KILL_STUDY["train"]["steps"] and resumed % 200 == 0
    assert run.data.tags[names.TAG_RAY_NODE] == head_id  # it moved to the node left
    # one value per step: the retry continued the history instead of logging it twice
    history = [m.step for m in client.get_metric_history(run.info.run_id, names.MODES_COVERED)]
    assert history == sorted(set(history)) and history[-1] == 3000
