"""The ``harness`` command: bad input exits 2 with one clear line and leaves nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import names

GOOD = {
    "name": "cli",
    "seeds": 1,
    "datasets": ["ring8"],
    "train": {"steps": 40, "eval_every": 20, "eval_samples": 200, "log_every": 10, "batch_size": 32},
    "search": {"trials": 1, "space": {"lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}},
    "variants": [{"name": "v", "model": {"name": "mlp", "params": {"g_hidden": [8], "d_hidden": [8]}},
                  "loss": "minimax"}],
}


def harness(*args, cwd, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def write(tmp_path: Path, data: dict, name="study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def with_(**changes):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return data


BAD = [
    (with_(colour="blue"), "colour: unknown key; allowed keys here: name, description"),
    (with_(variants__0__lossx="minimax"), "variants[0].lossx: unknown key"),
    (with_(variants__0__loss="minmax"), "variants[0].loss: unknown loss 'minmax'; registered:"),
    (with_(variants__0__model={"name": "mlp", "params": {"width": 3}}),
     "variants[0].model.params.width: unknown parameter of model 'mlp'; allowed: preset"),
    (with_(seeds=0), "seeds: Input should be greater than or equal to 1"),
    (with_(seed=-1), "seed: Input should be greater than or equal to 0"),
    (with_(search__space={}), "search.space: the search space is empty"),
    (with_(train__eval_every=500), "eval_every (500) is larger than steps (40)"),
    (with_(search__algorithm="bayes"), "search.algorithm: Input should be 'tpe', 'random' or 'grid'"),
    (with_(datasets=["ring9"]), "datasets.ring9: unknown dataset 'ring9'; registered: grid25, "),
    (with_(search__space={"steps": {"type": "int", "low": 1, "high": 9}}),
     "search.space.steps: cannot search 'steps'; allowed:"),
    (with_(plugins=["no_such_module_xyz"]), "plugins[0]: cannot import module 'no_such_module_xyz'"),
    (with_(train__lr_d="fast"), "train.lr_d: Input should be a valid number"),
    (with_(variants__0__loss="wgan", variants__0__tricks=["spectral_norm"]),
     ("variants[0].tricks: trick 'spectral_norm' cannot be combined with loss 'wgan', which "
      "provides weight_clipping")),
    (with_(variants__0__model="xy_game", variants__0__loss=KeyError, datasets=["xy_game"],
           variants__0__tricks=["r1"]),
     "variants[0].tricks: model 'xy_game' plays its own game, which takes no tricks; remove 'r1'"),
]


@pytest.mark.parametrize("data,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_study_file_exits_2_with_key_path_and_writes_nothing(tmp_path, data, message):
    path = write(tmp_path, data)
    proc = harness("study", str(path), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert message in err[0]
    assert err[0].startswith(f"harness: error: {path.resolve()}: ")  # every kind of error alike
    assert not (tmp_path / "runs").exists()


def test_missing_study_file_lists_available(tmp_path):
    proc = harness("study", "nope.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "not found" in proc.stderr and "stability.yaml" in proc.stderr


def test_unopenable_tracking_uri_exits_2_before_anything(tmp_path):
    path = write(tmp_path, GOOD)
    (tmp_path / "a-file").write_text("not a folder")
    proc = harness("study", str(path), "--tracking-uri",
                   f"sqlite:///{tmp_path / 'a-file' / 'x' / 'mlflow.db'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "cannot open tracking store" in proc.stderr
    proc = harness("study", str(path), "--tracking-uri", "ftp://example/x", cwd=tmp_path)
    assert proc.returncode == 2 and "unsupported scheme" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_unreachable_address_exits_2_and_creates_no_run(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write(tmp_path, GOOD)
    t0 = time.monotonic()
    proc = harness("study", str(path), "--address", f"127.0.0.1:{port}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"cannot reach a Ray cluster at --address '127.0.0.1:{port}'" in proc.stderr
    assert time.monotonic() - t0 < 60
    assert not (tmp_path / "runs").exists()  # the store it opened first is removed again


def test_variants_lists_every_plugin_with_parameters(tmp_path):
    proc = harness("variants", cwd=tmp_path)
    assert proc.returncode == 0
    out = proc.stdout
    for name in ("mlp", "minimax", "non_saturating", "maximum_likelihood", "least_squares",
                 "ring8", "grid25", "mode_coverage"):
        assert f"  {name} " in out, name
    assert "preset: Literal['default', 'pacgan', 'mnist'] = 'default'" in out
    assert "std: float = 0.05" in out and "std: float = 0.01" in out
    assert "a: float = 0.0" in out
    # the loss families and regularizers of the large studies, with their parameters
    for name in ("wgan", "wgan_gp", "dragan", "hinge", "gradient_penalty", "r1", "r2",
                 "spectral_norm"):
        assert f"  {name} " in out, name
    for param in ("clip: float | None = 0.01", "gp_weight: float = 10.0", "c: float = 0.5",
                  "center: float = 1.0", "at: Literal['interpolates', 'real'] = 'interpolates'",
                  "gamma: float = 10.0", "every: int = 1", "n_power_iterations: int = 1"):
        assert param in out, param


def test_run_trains_in_process_and_logs_one_run(tmp_path):
    path = write(tmp_path, GOOD)
    proc = harness("run", str(path), "--variant", "v", "--seed", "7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "status:" in proc.stderr and "modes_covered" in proc.stderr
    from harness.tracking import open_store

    client = open_store(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", create=False)
    exp = client.get_experiment_by_name("cli")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags[names.TAG_PHASE] == names.PHASE_SINGLE
    assert run.data.tags[names.TAG_SEED] == "7"
    assert names.MODES_COVERED in run.data.metrics

    bad = harness("run", str(path), "--variant", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "allowed: v" in bad.stderr
    bad = harness("run", str(path), "--variant", "v/ring9", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--variant v/ring9: dataset 'ring9' is not a dataset of variant 'v'" in bad.stderr
    bad = harness("run", str(path), "--variant", "v", "--seed", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "--seed must be an integer from 0 to 2147483647, got -1" in bad.stderr


def test_output_cut_short_by_its_reader_exits_141_quietly(tmp_path):
    """`harness variants | head -3`: no BrokenPipeError traceback, the exit code of a tool
    that SIGPIPE ends."""
    import fcntl

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the listing: it must block
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "variants"], cwd=tmp_path,
                            stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        head = [reader.readline() for _ in range(3)]
    _, err = proc.communicate(timeout=120)
    assert head[0] == b"models:\n"
    assert err == b""
    assert proc.returncode == 141


def test_a_broken_pipe_elsewhere_is_not_hidden(monkeypatch):
    from harness import cli

    def main():
        raise BrokenPipeError(32, "Broken pipe")  # a socket's, while stdout is fine

    monkeypatch.setattr(cli, "main", main)
    with pytest.raises(BrokenPipeError):
        cli.entry()


def test_ui_without_store_exits_2(tmp_path):
    proc = harness("ui", cwd=tmp_path)
    assert proc.returncode == 2 and "no tracking store" in proc.stderr


def test_report_and_ui_without_a_store_say_to_run_a_study_first(tmp_path):
    for cmd in ("report", "ui"):
        proc = harness(cmd, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert (f"no tracking store at sqlite:///{tmp_path / 'runs' / 'mlflow.db'}; run a study "
                "first or pass --tracking-uri") in proc.stderr
        assert not (tmp_path / "runs").exists()
