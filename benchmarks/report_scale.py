"""How long ``harness report`` takes on a study of many runs, and what its figures draw.

Writes a study of ``--runs`` child runs into a fresh MLflow store (sqlite, as ``harness
study`` makes one by default) -- ``--variants`` variants on ring8 and grid25, 60 % of each
pair's runs in the search phase and 40 % in the seeds phase, each run with the tags,
params, metric histories (losses and D's outputs every 100 steps, coverage every 500 steps
over 5,000 steps) and final ``final_samples.png`` a trial logs -- then builds the report
from it with :func:`harness.reports.stability.build_report` and prints the seconds each
part took and the largest number of runs a figure panel draws.

    python benchmarks/report_scale.py --runs 1000 --out .scratch/report-scale

The values are synthetic (each run's coverage curve rises to a seed-dependent plateau);
the report's work depends on the number of runs, histories and figures, not on them.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

STEPS = 5000
LOG_EVERY = 100
EVAL_EVERY = 500
MODES = {"ring8": 8, "grid25": 25}


def _png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.plots import figure_png

    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    ax.scatter([0, 1, 2], [0, 1, 0])
    path.write_bytes(figure_png(fig))
    return path


def make_study(out: Path, runs: int, variants: int, seed: int = 0) -> tuple:
    """``(client, tracking uri, experiment id, parent run id)`` of the synthetic study."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from harness import names
    from harness.tracking import _quiet_mlflow

    _quiet_mlflow()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    study = f"report-scale-{runs}"
    exp = client.create_experiment(study, artifact_location=(out / "artifacts").as_uri())
    parent = client.create_run(exp, tags={names.TAG_KIND: "study", names.TAG_STUDY: study})
    parent_id = parent.info.run_id
    client.log_batch(parent_id, params=[Param("metric", names.MODES_COVERED),
                                        Param("mode", "max"), Param("seeds", "0")])
    png = _png(out / names.ARTIFACT_FINAL_SAMPLES)
    rng = random.Random(seed)
    pairs = [(f"variant{v}", d) for v in range(variants) for d in MODES]
    now = int(time.time() * 1000)
    for i in range(runs):
        variant, dataset = pairs[i % len(pairs)]
        index = i // len(pairs)
        per_pair = math.ceil(runs / len(pairs))
        phase = names.PHASE_SEARCH if index < 0.6 * per_pair else names.PHASE_SEEDS
        n_modes = MODES[dataset]
        plateau = max(1, min(n_modes, round(rng.gauss(0.7 * n_modes, 0.15 * n_modes))))
        lr_d, lr_g = 10 ** rng.uniform(-4, -2.5), 10 ** rng.uniform(-4, -2.5)
        tags = {names.TAG_PARENT: parent_id, names.TAG_VARIANT: variant,
                names.TAG_MODEL: "mlp", names.TAG_LOSS: "non_saturating",
                names.TAG_TRICKS: "none", names.TAG_DATASET: dataset, names.TAG_SEED: str(i),
                names.TAG_PHASE: phase, names.TAG_STUDY: study, names.TAG_KIND: "trial",
                names.TAG_TRIAL_ID: f"t{i:05d}", names.TAG_STATUS: names.STATUS_OK}
        rid = client.create_run(exp, tags=tags, run_name=f"{variant}/{dataset} {phase} {i}",
                                start_time=now + i).info.run_id
        metrics = []
        for step in range(LOG_EVERY, STEPS + 1, LOG_EVERY):
            t = step / STEPS
            metrics += [Metric(names.LOSS_D, 1.2 - 0.3 * t + rng.gauss(0, 0.05), now, step),
                        Metric(names.LOSS_G, 0.8 + 0.4 * t + rng.gauss(0, 0.05), now, step),
                        Metric(names.D_REAL, 0.6 + rng.gauss(0, 0.02), now, step),
                        Metric(names.D_FAKE, 0.4 + rng.gauss(0, 0.02), now, step),
                        Metric(names.D_FAKE_AFTER, 0.45 + rng.gauss(0, 0.02), now, step)]
        for step in range(EVAL_EVERY, STEPS + 1, EVAL_EVERY):
            covered = round(plateau * min(1.0, 1.5 * step / STEPS))
            metrics += [Metric(names.MODES_COVERED, covered, now, step),
                        Metric(names.HQ_FRACTION, 0.2 + 0.7 * covered / n_modes, now, step),
                        Metric(names.MODE_KL, (n_modes - covered) / n_modes, now, step)]
        metrics += [Metric(names.STABILITY_SCORE, plateau / n_modes, now, STEPS),
                    Metric(names.N_MODES, n_modes, now, STEPS),
                    Metric(names.STEPS_DONE, STEPS, now, STEPS),
                    Metric(names.STEPS_BUDGET, STEPS, now, STEPS),
                    Metric(names.TRAIN_SECONDS, 10.0, now, STEPS)]
        params = {"lr_d": lr_d, "lr_g": lr_g, "steps": STEPS, "eval_every": EVAL_EVERY,
                  "batch_size": 64, "seed": i}
        for j in range(0, len(metrics), 1000):
            client.log_batch(rid, metrics=metrics[j:j + 1000],
                             params=[Param(k, str(v)) for k, v in params.items()] if j == 0 else [],
                             tags=[RunTag("harness.synthetic", "true")] if j == 0 else [])
        client.log_artifact(rid, str(png))
        client.set_terminated(rid, "FINISHED")
    client.set_terminated(parent_id, "FINISHED")
    return client, uri, exp, parent_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000, help="child runs (default 1000)")
    ap.add_argument("--variants", type=int, default=4, help="variants, each on 2 datasets")
    ap.add_argument("--out", type=Path, default=Path("report-scale"),
                    help="folder for the store and the report (must not hold a store yet)")
    args = ap.parse_args(argv)
    if not 1 <= args.runs <= 20_000:
        print(f"--runs {args.runs}: allowed 1 .. 20000", file=sys.stderr)
        return 2
    if not 1 <= args.variants <= 12:
        print(f"--variants {args.variants}: allowed 1 .. 12", file=sys.stderr)
        return 2
    if (args.out / "mlflow.db").exists():
        print(f"--out {args.out}: already holds a store (mlflow.db); give a new folder",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    client, _, exp, parent = make_study(args.out, args.runs, args.variants)
    t_make = time.perf_counter() - t0

    from harness.reports import figures
    from harness.reports.stability import build_report

    t0 = time.perf_counter()
    written = build_report(client, exp, parent, args.out / "report", attach=False)
    t_report = time.perf_counter() - t0
    result = {"runs": args.runs, "variants": args.variants, "store_seconds": round(t_make, 1),
              "report_seconds": round(t_report, 1), "figures": len(
                  [k for k in written if k not in ("dir", "md", "html", "csv")]),
              "most_runs_drawn_in_a_panel": getattr(figures, "MAX_RUNS_DRAWN", None)}
    print(json.dumps(result, indent=2))
    (args.out / "report_scale.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
