"""Packed trials on one GPU: harness study trials vs bare PyTorch processes, k per GPU.

A single eager DCGAN trial leaves a big GPU mostly idle, so a study packs several trials
per GPU (``resources.gpu: 1/k``). This benchmark asks whether the harness keeps what
packing buys: for every k in ``--packs`` (default 1, 2, 4, 8) it runs, back to back,

* **bare**: k processes started together (``multiprocessing``, spawn), each a plain
  PyTorch DCGAN loop -- the harness's own ``dcgan`` networks, so the architecture is
  identical, Adam (lr 2e-4, betas 0.5/0.999), BCE on logits, one D step on a real and a
  fake batch then one G step on fresh noise, the same batch size, step budget, device and
  CPU threads per process. Each builds its networks, moves the data to the device, waits
  at a barrier, then times its loop (``torch.cuda.synchronize`` before the clock stops);
* **harness**: a real study (``harness.study.run_study`` in a temporary working
  directory, MLflow in its sqlite file): DCGAN with the non-saturating loss on MNIST
  (``--data-dir``), k search trials at ``resources: {cpu: --cpus-per-trial, gpu: 1/k}``
  and ``max_concurrent_trials: k``, ``steps`` generator steps each, one evaluation at
  the end (``eval_every = steps``; ``class_modes`` on 256 samples) so that it measures
  training. The study protocol adds one seeds-phase trial after the search; it runs
  alone and is left out.

**What is compared.** Every trial (or bare process) i gives its steps n_i and its
training interval [s_i, e_i] on the wall clock. For a harness trial they are read back
from MLflow: n_i = ``steps_done``, e_i - s_i = ``train_seconds`` (the loop's time in
training: with one evaluation it is one stretch, ending on a synchronised step because
``steps`` is a multiple of ``log_every``), and e_i = the timestamp of the last
``loss_d`` history row, logged right after that stretch (plus the final evaluation of
256 samples). The *aggregate trial-steps/s* of a pack is

    sum_i n_i / (e_i - s_i)

the trials' summed training rates. It is the number of steps the pack completes per
second of the window W = [max s_i, min e_i] in which all k trained at once, assuming
each trial keeps a steady pace. ``overlap`` = |W| / mean(e_i - s_i) says how much of the
trials that window covers (1.0: all k trained side by side the whole time). Trials
that trained partly alone ran faster there and make the sum overstate the packed rate,
so a row with overlap below 0.8 is flagged ``*`` (raise ``--steps``). Bare processes
are measured the same way; the barrier keeps their overlap near 1, and their
``sum n_i / (max e_i - min s_i)`` (total steps / wall time) is in the JSON as ``span``,
next to the harness's. The ratio harness / bare should be >= 0.9 (target).

    python benchmarks/gpu_packing.py [--device auto|cuda|cpu] [--steps 3000]
        [--packs 1,2,4,8] [--out packing.json]

On a CPU (``--device cpu``, e.g. ``--packs 1,2 --steps 50``) "per GPU" means "side by
side on the machine's cores": a check that the benchmark works, not a GPU number.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

from harness import names

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "mnist"
#: below this overlap a pack's summed rates overstate its packed throughput
MIN_OVERLAP = 0.8
TARGET = 0.9
LR, BETAS = 2e-4, (0.5, 0.999)


def build(args: dict, device: torch.device):
    """The harness's DCGAN networks and MNIST training images, on ``device``."""
    from harness.builtin.dcgan import DCGAN
    from harness.builtin.mnist import Mnist

    dataset = Mnist(root=args["data_dir"], download=False)
    gan = DCGAN(z_dim=args["z_dim"], ngf=args["ngf"], ndf=args["ndf"]).build(dataset)
    return gan.generator.to(device), gan.discriminator.to(device), dataset.train_data().to(device)


def bare_worker(rank: int, args: dict, barrier, queue) -> None:
    """One bare process: build, wait for the others, train ``steps`` steps, report times."""
    try:
        torch.set_num_threads(args["cpus"])
        device = torch.device(args["device"])
        torch.manual_seed(rank)
        G, D, data = build(args, device)
        opt_d = torch.optim.Adam(D.parameters(), lr=LR, betas=BETAS)
        opt_g = torch.optim.Adam(G.parameters(), lr=LR, betas=BETAS)
        gen = torch.Generator(device=device).manual_seed(rank)
        b, z_dim, n = args["batch"], args["z_dim"], data.shape[0]
        ones = torch.ones(b, device=device)
        zeros = torch.zeros(b, device=device)
        barrier.wait(timeout=600)
        start = time.time()
        for _ in range(args["steps"]):
            real = data[torch.randint(0, n, (b,), generator=gen, device=device)]
            with torch.no_grad():
                fake = G(torch.randn(b, z_dim, generator=gen, device=device))
            loss_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                      + F.binary_cross_entropy_with_logits(D(fake), zeros))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            fake = G(torch.randn(b, z_dim, generator=gen, device=device))
            loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        queue.put((rank, args["steps"], start, time.time(), None))
    except BaseException:  # noqa: BLE001 -- reported to the parent, which fails loudly
        barrier.abort()  # the others stop waiting for this one
        queue.put((rank, 0, 0.0, 0.0, traceback.format_exc()))


def summarize(intervals: list[tuple[int, float, float]]) -> dict:
    """(steps, start, end) of each trial -> the pack's numbers (module docstring)."""
    durations = [e - s for _, s, e in intervals]
    window = min(e for _, _, e in intervals) - max(s for _, s, _ in intervals)
    span = max(e for _, _, e in intervals) - min(s for _, s, _ in intervals)
    rates = [n / d for (n, _, _), d in zip(intervals, durations)]
    return {
        "steps_per_s": sum(rates),
        "overlap": max(0.0, window) / statistics.mean(durations),
        "span": sum(n for n, _, _ in intervals) / span,
        "per_trial": rates,
        "intervals": intervals,
    }


def run_bare(k: int, args: dict) -> dict:
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=bare_worker, args=(r, args, barrier, queue)) for r in range(k)]
    for p in procs:
        p.start()
    results = []
    try:
        while len(results) < k:
            try:
                results.append(queue.get(timeout=5))
            except Exception:  # noqa: BLE001 -- queue.Empty: is anybody dead?
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"bare process exited with code {dead[0].exitcode}") from None
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    errors = [r[4] for r in results if r[4]]
    if errors:
        raise RuntimeError(f"a bare process failed:\n{errors[0]}")
    return summarize([(n, s, e) for _, n, s, e, _ in sorted(results)])


def study_yaml(k: int, args: dict) -> str:
    # Ray counts GPU shares in units of 0.0001: round down, or k shares would not fit one GPU
    gpu = math.floor(1e4 / k) / 1e4 if args["device"] == "cuda" else 0
    spec = {
        "name": f"gpu-packing-{k}",
        "description": f"benchmarks/gpu_packing.py: {k} DCGAN trials side by side",
        "seed": 0,
        "seeds": 1,
        "datasets": {"mnist": {"name": "mnist",
                               "params": {"root": str(args["data_dir"]), "download": False}}},
        "metrics": [{"name": "class_modes", "params": {"final_samples": 256}}],
        "train": {"steps": args["steps"], "eval_every": args["steps"], "eval_samples": 256,
                  "log_every": args["log_every"], "batch_size": args["batch"], "lr_d": LR,
                  "lr_g": LR, "beta1": BETAS[0], "beta2": BETAS[1], "device": args["device"]},
        "search": {"algorithm": "random", "trials": k, "metric": names.MODES_COVERED,
                   "space": {"lr_g": {"type": "choice", "values": [LR]}}},
        "resources": {"cpu": args["cpus"], "gpu": gpu},
        "max_concurrent_trials": k,
        "variants": [{"name": "dcgan", "loss": "non_saturating",
                      "model": {"name": "dcgan", "params": {
                          "z_dim": args["z_dim"], "ngf": args["ngf"], "ndf": args["ndf"]}}}],
    }
    return json.dumps(spec, indent=1)  # JSON is YAML


def run_harness(k: int, args: dict, verbose: bool) -> dict:
    from harness.study import run_study
    from harness.tracking import child_runs, open_store

    with tempfile.TemporaryDirectory(prefix="gpu-packing-") as tmp:
        path = Path(tmp, f"gpu-packing-{k}.yaml")
        path.write_text(study_yaml(k, args))
        log = sys.stderr if verbose else io.StringIO()
        try:
            out = run_study(path, workdir=tmp, max_concurrent=k, stream=log, write_report=False)
        except BaseException:
            if not verbose:
                sys.stderr.write(log.getvalue())
            raise
        client = open_store(out.tracking_uri)
        runs = [r for r in child_runs(client, out.experiment_id, out.parent_run_id)
                if r.data.tags.get(names.TAG_PHASE) == names.PHASE_SEARCH]
        intervals = []
        for run in runs:
            m = run.data.metrics
            if names.TRAIN_SECONDS not in m:
                if not verbose:
                    sys.stderr.write(log.getvalue())
                raise RuntimeError(f"trial {run.info.run_name} did not finish: status "
                                   f"{run.info.status}, {run.data.tags.get(names.TAG_ERROR, '')}")
            last = max(client.get_metric_history(run.info.run_id, names.LOSS_D),
                       key=lambda x: x.step)
            end = last.timestamp / 1000
            intervals.append((int(m[names.STEPS_DONE]), end - m[names.TRAIN_SECONDS], end))
        if len(intervals) != k:
            raise RuntimeError(f"expected {k} search trials in MLflow, found {len(intervals)}")
        return summarize(sorted(intervals, key=lambda x: x[1]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                    help="auto: cuda if torch can use it, else cpu")
    ap.add_argument("--steps", type=int, default=3000, help="generator steps per trial "
                    "(rounded up to a multiple of --log-every)")
    ap.add_argument("--packs", default="1,2,4,8", help="trials per GPU, comma-separated")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--log-every", type=int, default=20,
                    help="the harness's diagnostics cadence (studies/mnist.yaml uses 20)")
    ap.add_argument("--cpus-per-trial", type=int, default=1,
                    help="Ray CPUs per trial = torch threads of every trial and bare process")
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--ndf", type=int, default=64)
    ap.add_argument("--z-dim", type=int, default=100)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                    help="folder with the MNIST IDX files (default: ../shared/datasets/mnist "
                         "beside the repository)")
    ap.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    ap.add_argument("--verbose", action="store_true", help="show the studies' progress")
    a = ap.parse_args(argv)
    try:
        packs = [int(x) for x in a.packs.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--packs must be comma-separated integers, got {a.packs!r}")
    if not packs or min(packs) < 1:
        ap.error(f"--packs needs trials per GPU >= 1, got {a.packs!r}")
    if a.steps < 1 or a.log_every < 1:
        ap.error("--steps and --log-every must be >= 1")
    device = a.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda, but torch cannot use CUDA here")
    if not a.data_dir.is_dir():
        ap.error(f"--data-dir {a.data_dir} is not a folder (it must hold the MNIST IDX files)")
    steps = math.ceil(a.steps / a.log_every) * a.log_every
    args = {"device": device, "steps": steps, "batch": a.batch, "log_every": a.log_every,
            "cpus": a.cpus_per_trial, "ngf": a.ngf, "ndf": a.ndf, "z_dim": a.z_dim,
            "data_dir": str(a.data_dir.resolve())}

    from harness.study import init_ray

    started = init_ray(None)  # one local Ray for every pack
    hw = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({mp.cpu_count()} cores)"
    print(f"DCGAN (ngf {a.ngf}, ndf {a.ndf}, z {a.z_dim}) on MNIST, batch {a.batch}, "
          f"{steps} steps per trial, {a.cpus_per_trial} CPU thread(s) per trial, "
          f"device {device}: {hw}", flush=True)
    if device == "cpu":
        print("  (CPU run: trials share the cores, not a GPU -- a check that the benchmark "
              "works, not a GPU number)", flush=True)
    rows = []
    try:
        for k in packs:
            bare = run_bare(k, args)
            harness = run_harness(k, args, a.verbose)
            ratio = harness["steps_per_s"] / bare["steps_per_s"]
            rows.append({"k": k, "harness": harness, "bare": bare, "ratio": ratio})
            print(f"  k={k}: harness {harness['steps_per_s']:.1f}, bare "
                  f"{bare['steps_per_s']:.1f} trial-steps/s", flush=True)
    finally:
        if started:
            import ray

            ray.shutdown()

    print()
    print(f"{'trials per GPU':>14}  {'harness steps/s':>15}  {'bare steps/s':>12}  "
          f"{'ratio':>6}  {'overlap h/b':>11}  {'target':>6}")
    for r in rows:
        h, b = r["harness"], r["bare"]
        flag = "*" if min(h["overlap"], b["overlap"]) < MIN_OVERLAP else " "
        print(f"{r['k']:>14}  {h['steps_per_s']:>15.1f}  {b['steps_per_s']:>12.1f}  "
              f"{r['ratio']:>6.3f}  {h['overlap']:>5.2f}/{b['overlap']:<5.2f}{flag} "
              f"{'>= ' + str(TARGET):>6}")
    if any(min(r["harness"]["overlap"], r["bare"]["overlap"]) < MIN_OVERLAP for r in rows):
        print(f"  * overlap below {MIN_OVERLAP}: the trials trained partly alone, so the sum "
              "of their rates overstates the packed rate; raise --steps")
    report = {"device": device, "hardware": hw, "torch": torch.__version__, "steps": steps,
              "batch": a.batch, "log_every": a.log_every, "cpus_per_trial": a.cpus_per_trial,
              "ngf": a.ngf, "ndf": a.ndf, "z_dim": a.z_dim, "target": TARGET, "packs": rows}
    if a.out:
        a.out.write_text(json.dumps(report, indent=2))
        print(f"  numbers: {a.out}")
    sys.stdout.flush()
    return report


if __name__ == "__main__":
    main()
