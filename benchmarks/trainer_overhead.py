"""Harness trainer vs a bare PyTorch loop: same model, batch, optimizer and algorithm.

Prints steps/s of both, measured in the same process and interleaved (bare, harness,
bare, harness, ...) so machine noise hits both alike, and their ratio (target >= 0.95).
The harness side is ``Trainer.fit`` with one evaluation at the end (excluded from its
steps/s: ``train_seconds`` counts the training loop only) and a reporter that keeps
nothing, so the ratio is the cost of the harness's step: hooks, periodic diagnostics
(every ``log_every`` steps) and bookkeeping.

    python benchmarks/trainer_overhead.py [--steps 2000] [--repeats 3] [--threads 1]

With ``--study`` it also runs the default study into a temporary folder and prints its
wall time and the share of it spent in the training loops (sum of the trials'
``train_seconds`` / (wall time x concurrent trials)).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from harness.config import TrialConfig
from harness.reporting import NullReporter
from harness.trial import build_trainer


def config(steps: int, batch: int) -> TrialConfig:
    return TrialConfig(study="bench", variant="mlp-ns", dataset_key="ring8", model="mlp",
                       loss="non_saturating", dataset="ring8", metrics=["mode_coverage"],
                       train=dict(steps=steps, eval_every=steps, log_every=10, batch_size=batch))


def bare_loop(steps: int, batch: int, seed: int = 0) -> float:
    """The textbook loop (PyTorch DCGAN example, fresh noise for G): returns steps/s."""
    trainer = build_trainer(config(steps, batch).with_params({}, seed=seed))  # same nets and data
    G, D, data = trainer.G, trainer.D, trainer.data
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        real = data[torch.randint(0, data.shape[0], (batch,), generator=gen)]
        with torch.no_grad():
            fake = G(torch.randn(batch, 2, generator=gen))
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(G(torch.randn(batch, 2, generator=gen)))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return steps / (time.perf_counter() - t0)


def harness_loop(steps: int, batch: int, seed: int = 0) -> float:
    trainer = build_trainer(config(steps, batch).with_params({}, seed=seed))
    result = trainer.fit(NullReporter())
    return result.steps_done / result.train_seconds


def study_share() -> None:
    from harness.study import run_study

    with tempfile.TemporaryDirectory() as tmp:
        out = run_study("stability.yaml", workdir=tmp)
        print(f"default study: {out.study_seconds:.0f} s wall, {out.n_trials} trials, "
              f"{out.concurrency} at a time, training share {out.training_share:.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--study", action="store_true", help="also time the default study")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bare_loop(200, args.batch)  # warm-up
    harness_loop(200, args.batch)
    bare, harness = [], []
    for r in range(args.repeats):
        bare.append(bare_loop(args.steps, args.batch, seed=r))
        harness.append(harness_loop(args.steps, args.batch, seed=r))
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"MLP 3x128 on ring8, batch {args.batch}, {args.steps} steps, {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"  bare PyTorch loop : {b:8.1f} steps/s   (runs: {', '.join(f'{x:.0f}' for x in bare)})")
    print(f"  harness trainer   : {h:8.1f} steps/s   (runs: {', '.join(f'{x:.0f}' for x in harness)})")
    print(f"  ratio harness/bare: {h / b:.3f}   (target >= 0.95)")
    if args.study:
        study_share()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
