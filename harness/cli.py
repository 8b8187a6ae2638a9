"""The ``harness`` command: study, run, report, variants, ui.

Errors a user can fix print one line (``harness: error: ...``) and exit with code 2;
Ctrl-C exits with 130 after the runs it interrupted were marked KILLED in MLflow.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from harness.errors import HarnessError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=(
        "Train GAN variants as Ray Tune trials, track them in MLflow and compare "
        "their stability and mode coverage."))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    uri_help = ("MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                "sqlite:///./runs/mlflow.db in the working directory)")

    s = sub.add_parser("study", help="run a study file (search phase + seeds phase) and report")
    s.add_argument("file", help="study YAML; a bare name is also looked up in the project's studies/")
    s.add_argument("--address", help="join an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT")
    s.add_argument("--tracking-uri", help=uri_help)
    s.add_argument("--max-concurrent", type=int, help="trials at a time (default: CPUs / cpu per trial)")
    s.add_argument("--no-report", action="store_true", help="skip writing the report at the end")

    r = sub.add_parser("run", help="train one variant of a study in-process (no Ray), one MLflow run")
    r.add_argument("file")
    r.add_argument("--variant", required=True, help="variant name (or variant/dataset)")
    r.add_argument("--dataset", help="dataset key, when the variant has several")
    r.add_argument("--seed", type=int, help="seed (default: the study's seed)")
    r.add_argument("--tracking-uri", help=uri_help)

    rp = sub.add_parser("report", help="write report.md/report.html for a study from MLflow")
    rp.add_argument("study", nargs="?", help="study name or parent run id (default: latest study)")
    rp.add_argument("--tracking-uri", help=uri_help)
    rp.add_argument("--out", help="output folder (default: runs/reports/<study>-<run>)")

    sub.add_parser("variants", help="list every registered model, loss, trick, dataset and metric")

    u = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1 for the study store")
    u.add_argument("--tracking-uri", help=uri_help)
    u.add_argument("--port", type=int, default=5000)
    return p


def cmd_variants() -> int:
    from harness.plugins import load_plugins
    from harness.registry import ALL

    load_plugins()
    for kind, reg in ALL.items():
        print(f"{kind}:")
        rows = reg.describe()
        if not rows:
            print("  (none registered)")
        for name, doc, params in rows:
            print(f"  {name:<26} {doc}")
            for prm in params:
                print(f"      {prm.describe()}")
        print()
    return 0


def cmd_report(args) -> int:
    from reports.stability import build_report, latest_study_run

    from harness.tracking import RUNS_DIR, open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    client = open_store(uri, create=False)
    exp_id, parent_id = latest_study_run(client, args.study)
    name = client.get_experiment(exp_id).name
    out = Path(args.out) if args.out else Path.cwd() / RUNS_DIR / "reports" / f"{name}-{parent_id[:8]}"
    paths = build_report(client, exp_id, parent_id, out)
    print(f"report: {paths['md']}\n        {paths['html']}")
    return 0


def cmd_ui(args) -> int:
    from harness.tracking import open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise HarnessError(f"no tracking store at {uri}; run a study first or pass --tracking-uri")
    open_store(uri, create=False)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
           "--host", "127.0.0.1", "--port", str(args.port)]
    print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "variants":
            return cmd_variants()
        if args.command == "study":
            from harness.study import run_study

            outcome = run_study(args.file, address=args.address, tracking_uri=args.tracking_uri,
                                max_concurrent=args.max_concurrent,
                                write_report=not args.no_report)
            return 130 if outcome.interrupted else 0
        if args.command == "run":
            from harness.study import run_single

            run_single(args.file, args.variant, dataset=args.dataset, seed=args.seed,
                       tracking_uri=args.tracking_uri)
            return 0
        if args.command == "report":
            return cmd_report(args)
        if args.command == "ui":
            return cmd_ui(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    return 2


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
