"""Aggregate trial-steps/s: N vectorized copies vs the single-copy Trainer.

Same game everywhere, one of three models (``--model``):

* ``mlp`` (default): the plain MLP (G and D with 4 hidden layers of 128 ReLU units) on ring8;
* ``dcgan``: the DCGAN on MNIST 28x28 (``harness/builtin/dcgan.py``; z 100, ``--width`` feature
  maps for ngf = ndf, 64 being the paper's; default 32 so a CPU run stays short), the real
  test split from ``--data`` (default ``../shared/datasets/mnist``);
* ``pacgan``: PacGAN's 2-D networks (the ``mlp`` model's ``pacgan`` preset: G 4 x 400 with
  batch norm, D 3 maxout layers of 200 x 5) on grid25, packed ``--pack`` samples at a
  time (default 1: the GAN) with the paper's batch of 100 packs (``100 x pack`` samples);

batch 64 (pacgan: 100 x pack), the non-saturating loss, d_steps 1, diagnostics every 10th
step. Measured in one run:

* ``bare``: the textbook PyTorch loop (``torch.optim.Adam``, softplus losses, fresh noise)
  on the same networks and data, in this process: the floor the harness is measured on;
* ``single``: one harness ``Trainer`` (``build_trainer``) stepping in this process;
* ``K procs`` (``--procs``, default 2: one per core here): K such Trainers in K processes
  side by side, each with one torch thread; the aggregate is the sum of their steps/s (on a
  GPU: the process packing that ``vectorize`` is meant to beat);
* ``vec N``: one :class:`harness.vector.engine.VectorizedGAN` of N copies (seeds 0..N-1,
  different learning rates) in this process; aggregate = N x its steps/s;
* ``K procs x vec N`` (CPU only): K such VectorizedGANs in K processes side by side, one
  torch thread each -- how a study runs vectorized trials on a CPU (``resources: {cpu: 1}``
  per trial, one trial per core); aggregate = the sum of N x their steps/s. This is the row
  to hold against ``K procs``: the same cores, used the same way;
* ``bare vec N`` (``--bare-vectorized``, ring MLP): :class:`BareVectorized`, a
  quick check written by hand (stacked weights, ``baddbmm``, one ``torch.optim.Adam``, no
  diagnostics), in this process and (CPU) as K processes: the floor ``vec N`` is measured
  on, as ``bare`` is the single Trainer's;
* ``vec N, compile=MODE`` (``--compile MODE[,MODE]``): the same with the training step
  compiled by ``torch.compile`` in that mode (``reduce-overhead``: CUDA graphs on a GPU);
  compilation happens before the clock starts. A mode that fails prints its error as
  its row.

Every measurement runs ``--steps`` steps or ``--max-seconds``, whichever comes first
(after a short warm-up), so big N stays short.

    python benchmarks/vectorized.py [--model mlp|dcgan] [--steps 200] [--copies 1,8,32,128]
                                    [--threads 1] [--procs 2] [--device cpu|cuda] [--quick]
                                    [--compile default,reduce-overhead] [--repeat 3]
                                    [--bare-vectorized]

On a GPU (``--device cuda``) the K processes share the one GPU; run it with ``--procs`` 1, 2,
4, 8 to find the best packing. Ratios are printed against the bare loop, the single Trainer
and the K processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

#: what ``config`` builds: set once from the command line (and passed to the workers)
SETUP = {"model": "mlp", "width": 32, "data": None, "device": "cpu", "pack": 1}


def config(seed: int = 0, lr_d: float = 1e-3, lr_g: float = 1e-3, steps: int = 100_000):
    from harness.config import TrialConfig

    train = {"steps": steps, "eval_every": steps, "log_every": 10, "batch_size": 64,
             "lr_d": lr_d, "lr_g": lr_g, "device": SETUP["device"]}
    if SETUP["model"] == "dcgan":
        w = SETUP["width"]
        return TrialConfig(
            study="bench", variant="dcgan-ns", dataset_key="mnist",
            model={"name": "dcgan", "params": {"z_dim": 100, "ngf": w, "ndf": w}},
            loss="non_saturating", dataset={"name": "mnist", "params": {"root": SETUP["data"]}},
            metrics=[], seed=seed, train={**train, "lr_d": lr_d / 5, "lr_g": lr_g / 5})
    if SETUP["model"] == "pacgan":
        m = SETUP["pack"]
        return TrialConfig(
            study="bench", variant=f"pacgan{m}", dataset_key="grid25",
            model={"name": "mlp", "params": {"preset": "pacgan"}}, loss="non_saturating",
            dataset="grid25", metrics=["mode_coverage"], seed=seed,
            tricks=[{"name": "packing", "params": {"m": m}}] if m > 1 else [],
            train={**train, "batch_size": 100 * m, "lr_d": lr_d / 10, "lr_g": lr_g / 10})
    return TrialConfig(
        study="bench", variant="mlp-ns", dataset_key="ring8",
        model={"name": "mlp", "params": {"g_hidden": [128] * 4, "d_hidden": [128] * 4}},
        loss="non_saturating", dataset="ring8", metrics=["mode_coverage"], seed=seed,
        train=train,
    )


def _sync() -> None:
    if SETUP["device"] == "cuda":
        torch.cuda.synchronize()


def _timed(step, steps: int, max_seconds: float, warmup: int = 3) -> tuple[int, float]:
    for i in range(warmup):
        step(i)
    _sync()
    t0 = time.perf_counter()
    done = 0
    while done < steps and (time.perf_counter() - t0) < max_seconds:
        step(warmup + done)
        done += 1
    _sync()
    return done, time.perf_counter() - t0


def bare_rate(steps: int, max_seconds: float, seed: int = 0) -> float:
    """Steps/s of the textbook loop on the Trainer's networks and data (no diagnostics)."""
    import torch.nn.functional as F

    from harness.plugins import load_plugins
    from harness.trial import build_trainer

    load_plugins()
    trainer = build_trainer(config(seed))
    G, D, data, z_dim = trainer.G, trainer.D, trainer.data, trainer.gan.z_dim
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    dev = data.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    batch = trainer.settings.batch_size

    def step(i: int) -> None:
        real = data[torch.randint(0, data.shape[0], (batch,), generator=gen, device=dev)]
        with torch.no_grad():
            fake = G(torch.randn(batch, z_dim, generator=gen, device=dev))
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(G(torch.randn(batch, z_dim, generator=gen, device=dev)))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    done, seconds = _timed(step, steps, max_seconds)
    return done / seconds


class BareVectorized:
    """The issue's quick check, as a user writes it by hand with nothing of the harness:
    the N copies' ``nn.Linear`` weights (the N Trainers' initial ones) stacked into plain
    tensors, each layer one ``torch.baddbmm``, one ``torch.optim.Adam`` per network over the
    stacked tensors (one learning rate for all copies: a per-copy one needs the harness's
    ``StackedAdam``), softplus losses summed over copies, no diagnostics. The floor the
    vectorized harness is measured on, as the bare loop is the single Trainer's. The ring
    MLP only (its networks are ``Linear`` and ``ReLU`` layers)."""

    def __init__(self, n: int, first_seed: int = 0):
        from torch import nn

        from harness.plugins import load_plugins
        from harness.trial import build_trainer

        load_plugins()
        trainers = [build_trainer(config(first_seed + k)) for k in range(n)]
        first = trainers[0]
        self.data, self.z_dim = first.data, first.gan.z_dim
        self.batch, self.n = first.settings.batch_size, n
        self.gen = torch.Generator(device=self.data.device).manual_seed(first_seed)

        def stacked(nets: list[nn.Module]) -> list[torch.Tensor]:
            per_copy = [[m for m in net.modules() if isinstance(m, nn.Linear)] for net in nets]
            acts = {type(m) for m in nets[0].modules()
                    if not isinstance(m, (nn.Linear, nn.Sequential)) and m is not nets[0]}
            if acts != {nn.ReLU}:
                raise ValueError(f"the bare vectorized loop runs Linear/ReLU MLPs, got {acts}")
            params = []
            for i in range(len(per_copy[0])):
                for name in ("weight", "bias"):
                    t = torch.stack([getattr(layers[i], name).detach() for layers in per_copy])
                    params.append(t.contiguous().requires_grad_())
            return params

        self.G = stacked([t.G for t in trainers])
        self.D = stacked([t.D for t in trainers])
        self.opt_d = torch.optim.Adam(self.D, lr=1e-3, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.G, lr=1e-3, betas=(0.5, 0.999))

    @staticmethod
    def net(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        last = len(params) // 2 - 1
        for i in range(last + 1):
            w, b = params[2 * i], params[2 * i + 1]
            x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
            if i < last:
                x = torch.relu(x)
        return x

    def train_step(self, measure: bool = False) -> None:
        import torch.nn.functional as F

        n, b, dev = self.n, self.batch, self.data.device
        real = self.data[torch.randint(0, self.data.shape[0], (n, b), generator=self.gen,
                                       device=dev)]
        with torch.no_grad():
            fake = self.net(self.G, torch.randn(n, b, self.z_dim, generator=self.gen, device=dev))
        loss_d = (F.softplus(-self.net(self.D, real)).mean((1, 2))
                  + F.softplus(self.net(self.D, fake)).mean((1, 2))).sum()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        z = torch.randn(n, b, self.z_dim, generator=self.gen, device=dev)
        loss_g = F.softplus(-self.net(self.D, self.net(self.G, z))).mean((1, 2)).sum()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()


def single_rate(steps: int, max_seconds: float, seed: int = 0) -> float:
    """Steps/s of one harness Trainer, stepped as TrainingLoop.fit steps it."""
    from harness.plugins import load_plugins
    from harness.trial import build_trainer

    load_plugins()
    trainer = build_trainer(config(seed))

    def step(i: int) -> None:
        trainer.train_step(measure=(i + 1) % 10 == 0)
        trainer.step += 1

    done, seconds = _timed(step, steps, max_seconds)
    return done / seconds


def _vector_configs(n: int, first_seed: int = 0) -> list:
    """``n`` copies: seeds ``first_seed..``, different learning rates."""
    return [config(seed=first_seed + k, lr_d=1e-3 * (1 + k % 4), lr_g=1e-3 * (1 + k % 3))
            for k in range(n)]


def _worker(setup: dict, seed: int, copies: int, steps: int, max_seconds: float,
            barrier, out, bare: bool = False) -> None:
    """One process with one torch thread, as a study's ``resources: {cpu: 1}`` trial runs:
    a single Trainer (``copies`` 0), a VectorizedGAN of ``copies`` copies or (``bare``)
    a :class:`BareVectorized` of that many. Puts (trial-steps done, seconds)."""
    torch.set_num_threads(1)
    SETUP.update(setup)
    from harness.allocator import keep_freed_memory

    keep_freed_memory()  # as harness.tune_glue does in every trial process
    from harness.plugins import load_plugins
    from harness.trial import build_trainer
    from harness.vector.engine import VectorizedGAN

    load_plugins()
    if copies and bare:
        model = BareVectorized(copies, first_seed=seed * copies)
    elif copies:
        model = VectorizedGAN(_vector_configs(copies, first_seed=seed * copies))
    else:
        model = build_trainer(config(seed))
    for i in range(3):
        model.train_step(measure=False)
    _sync()
    barrier.wait()
    t0 = time.perf_counter()
    done = 0
    while done < steps and (time.perf_counter() - t0) < max_seconds:
        model.train_step(measure=(done + 1) % 10 == 0)
        done += 1
    _sync()
    out.put((done * max(copies, 1), time.perf_counter() - t0))


def process_rate(k: int, steps: int, max_seconds: float, copies: int = 0,
                 bare: bool = False) -> float:
    """Aggregate trial-steps/s of ``k`` processes side by side (one torch thread each),
    each training one Trainer (``copies`` 0) or ``copies`` vectorized copies (``bare``:
    the :class:`BareVectorized` loop)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_worker,
                         args=(dict(SETUP), seed, copies, steps, max_seconds, barrier, out,
                               bare))
             for seed in range(k)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(done / seconds for done, seconds in results)


def vectorized_rate(n: int, steps: int, max_seconds: float, loss_mode: str = "auto",
                    compile: str | None = None) -> float:
    from harness.plugins import load_plugins
    from harness.vector.engine import VectorizedGAN

    load_plugins()
    vec = VectorizedGAN(_vector_configs(n), loss_mode=loss_mode, compile=compile)

    def step(i: int) -> None:
        vec.train_step(measure=(i + 1) % 10 == 0)

    if compile is not None:  # compile outside the clock: both measure modes, both grad modes
        torch._dynamo.reset()  # each N compiles afresh (not against dynamo's recompile limit)
        for i in range(10):
            step(i)
    done, seconds = _timed(step, steps, max_seconds)
    return n * done / seconds


def bare_vectorized_rate(n: int, steps: int, max_seconds: float) -> float:
    loop = BareVectorized(n)
    done, seconds = _timed(loop.train_step, steps, max_seconds)
    return n * done / seconds


BARE, SINGLE = "bare PyTorch loop, 1 proc", "single Trainer, 1 proc"


def procs_name(k: int) -> str:
    return f"{k} single Trainers, {k} procs"


def measure_round(args: argparse.Namespace, copies: list[int], compile_modes: list[str],
                  failed: list[str]) -> Iterator[tuple[str, float]]:
    """Every row once, each ``(setting, trial-steps/s)`` as soon as it is measured; a
    compile mode that fails is appended to ``failed`` instead."""
    steps, secs = args.steps, args.max_seconds
    yield BARE, bare_rate(steps, secs)
    yield SINGLE, single_rate(steps, secs)
    yield procs_name(args.procs), process_rate(args.procs, steps, secs)
    for n in copies:
        yield f"vectorized N={n}, 1 proc", vectorized_rate(n, steps, secs)
    if args.bare_vectorized:
        for n in copies:
            yield f"bare vectorized N={n}, 1 proc", bare_vectorized_rate(n, steps, secs)
    if args.device == "cpu":
        for n in copies:
            yield (f"{args.procs} procs x vectorized N={n}",
                   process_rate(args.procs, steps, secs, copies=n))
        if args.bare_vectorized:
            for n in copies:
                yield (f"{args.procs} procs x bare vectorized N={n}",
                       process_rate(args.procs, steps, secs, copies=n, bare=True))
    for mode in compile_modes:
        for n in copies:
            name = f"vectorized N={n}, compile={mode}"
            try:
                rate = vectorized_rate(n, steps, secs, compile=mode)
            except Exception as exc:  # noqa: BLE001 -- a failed mode is a result too: report it
                failed.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            yield name, rate
    if args.compare_loss_modes and copies:
        n = max(copies)
        other = "vmap" if n <= 2 else "loop"  # the mode "auto" does not pick for this N
        yield f"vectorized N={n}, loss_mode={other}", vectorized_rate(n, steps, secs, other)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("mlp", "dcgan", "pacgan"), default="mlp",
                    help="ring MLP (default), DCGAN-MNIST or PacGAN's 2-D networks on grid25")
    ap.add_argument("--pack", type=int, default=1,
                    help="pacgan: samples per pack (1: the GAN; 2, 3, 4: PacGAN2/3/4)")
    ap.add_argument("--width", type=int, default=32, help="DCGAN ngf = ndf (64: the paper's)")
    ap.add_argument("--data", default=None,
                    help="MNIST IDX directory (default: ../shared/datasets/mnist)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--steps", type=int, default=200, help="steps per measurement (at most)")
    ap.add_argument("--copies", default="1,8,32,128", help="comma-separated N")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in this process")
    ap.add_argument("--procs", type=int, default=2,
                    help="Trainer processes side by side for the packing row (default 2)")
    ap.add_argument("--max-seconds", type=float, default=10.0,
                    help="time cap per measurement")
    ap.add_argument("--quick", action="store_true",
                    help="40 steps, copies 1,8,32, 4 s per measurement")
    ap.add_argument("--compile", default="",
                    help="comma-separated torch.compile modes to time as well, at every N "
                         "(e.g. default,reduce-overhead)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of every row, interleaved; the table shows medians")
    ap.add_argument("--bare-vectorized", action="store_true",
                    help="also time a hand-written vectorized loop (BareVectorized) "
                         "at every N (ring MLP only)")
    ap.add_argument("--compare-loss-modes", action="store_true",
                    help="also time the loss mode 'auto' does not pick, at the largest N")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.bare_vectorized and args.model != "mlp":
        ap.error("--bare-vectorized: the hand-written loop stacks the ring MLP only "
                 f"(--model mlp), got --model {args.model}")
    if args.pack < 1 or (args.pack > 1 and args.model != "pacgan"):
        ap.error(f"--pack must be at least 1, and above 1 only with --model pacgan; "
                 f"got --pack {args.pack} with --model {args.model}")
    if args.quick:
        args.steps, args.copies, args.max_seconds = 40, "1,8,32", 4.0
    copies = [int(c) for c in args.copies.split(",") if c.strip()]
    compile_modes = [m.strip() for m in args.compile.split(",") if m.strip()]
    from harness.vector.adam import COMPILE_MODES

    unknown = [m for m in compile_modes if m not in COMPILE_MODES[1:]]
    if unknown:
        ap.error(f"--compile: unknown mode(s) {', '.join(unknown)}; "
                 f"choose from {', '.join(COMPILE_MODES[1:])}")
    torch.set_num_threads(args.threads)
    data = args.data or str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist")
    SETUP.update(model=args.model, width=args.width, data=data, device=args.device,
                 pack=args.pack)
    what = {"dcgan": f"DCGAN-MNIST ngf = ndf = {args.width}, batch 64",
            "pacgan": f"grid25 PacGAN{args.pack} networks, batch {100 * args.pack}",
            "mlp": "ring8 MLP 4x128, batch 64"}[args.model]
    print(f"{what}, device {args.device}; torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {args.threads} torch thread(s) in this process, "
          f"load average before: {load_average()}")

    from harness.allocator import keep_freed_memory

    print(f"glibc malloc keeps freed memory (harness.allocator, as in trial processes): "
          f"{keep_freed_memory()}")
    rates: dict[str, list[float]] = {}
    failed: list[str] = []
    for _ in range(args.repeat):  # rounds interleave the rows, so a slow spell hits them all
        for name, rate in measure_round(args, copies, compile_modes, failed):
            rates.setdefault(name, []).append(rate)
            # each row as it comes (stderr): a run cut short still shows what it measured
            print(f"  measured {name}: {rate:.1f} trial-steps/s", file=sys.stderr, flush=True)
    med = {name: statistics.median(values) for name, values in rates.items()}
    bare, single = med[BARE], med[SINGLE]
    two = med[procs_name(args.procs)]
    procs = f"x {args.procs} procs"
    spread = "  min-max" if args.repeat > 1 else ""
    print(f"\n{'setting':<40} {'trial-steps/s':>14} {'x bare':>7} {'x single':>9} "
          f"{procs:>10}{spread}")
    for name, rate in med.items():
        extra = (f"  {min(rates[name]):.1f}-{max(rates[name]):.1f}" if args.repeat > 1 else "")
        print(f"{name:<40} {rate:>14.1f} {rate / bare:>7.2f} {rate / single:>9.2f} "
              f"{rate / two:>10.2f}{extra}")
    if args.repeat > 1:
        print(f"(medians of {args.repeat} interleaved rounds; ratios of medians)")
    for line in dict.fromkeys(failed):
        print(f"failed  {line}")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
