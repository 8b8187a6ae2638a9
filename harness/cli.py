"""The ``harness`` command: study, run, report, variants, ui, server.

Errors a user can fix print one line (``harness: error: ...``) and exit with code 2;
Ctrl-C exits with 130 after the runs it interrupted were marked KILLED in MLflow (``ui`` and
``server`` exit 0: stopping is how a server ends). A study whose every run failed (raised)
exits with 1: some failed runs are results, none measured is not. Output cut short by its
reader (``harness variants | head``) ends the command quietly with code 141, as SIGPIPE
ends other tools.
"""

from __future__ import annotations

import argparse
import os
import select
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
    s.add_argument("--address", help="join an existing Ray cluster: auto, HOST:PORT or "
                   "ray://HOST:PORT (default: start a Ray of its own, even where a cluster runs)")
    s.add_argument("--tracking-uri", help=uri_help)
    s.add_argument("--max-concurrent", type=int, help="trials at a time (default: CPUs / cpu per trial)")
    s.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    s.add_argument("--resume", action="store_true", help=(
        "continue this study's newest interrupted run (Ctrl-C, a killed driver, a lost "
        "machine): finished trials are kept, unfinished ones continue from their checkpoints"))

    r = sub.add_parser("run", help="train one variant of a study in-process (no Ray), one MLflow run")
    r.add_argument("file")
    r.add_argument("--variant", required=True, help="variant name (or variant/dataset)")
    r.add_argument("--dataset", help="dataset key, when the variant has several")
    r.add_argument("--seed", type=int, help="seed (default: the study's seed)")
    r.add_argument("--tracking-uri", help=uri_help)

    rp = sub.add_parser("report", help="write report.md/report.html for a study from MLflow")
    rp.add_argument("study", nargs="*", help=(
        "study name or parent run id (default: the latest study); several: one report over "
        "all of them (they must share datasets)"))
    rp.add_argument("--pool", action="store_true", help=(
        "with several studies: pool each variant's runs across them (the same settings with "
        "other seeds, e.g. one preset run on two machines) instead of reporting them apart"))
    rp.add_argument("--tracking-uri", help=uri_help)
    rp.add_argument("--out", help="output folder (default: runs/reports/<study>-<run>)")
    rp.add_argument("--resamples", type=int, default=2000, help=(
        "bootstrap resamples behind every confidence interval (default 2000)"))
    rp.add_argument("--bootstrap-seed", type=int, default=0, help=(
        "seed of the bootstrap resampling: the same seed gives the same intervals (default 0)"))

    sub.add_parser("variants", help="list every registered model, loss, trick, dataset and metric")

    u = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1 for the study store")
    u.add_argument("--tracking-uri", help=uri_help)
    u.add_argument("--host", default="127.0.0.1", help=(
        "address to listen on (default 127.0.0.1, this machine only; anything else is "
        "reachable from other machines and prints a warning)"))
    u.add_argument("--port", type=int, default=5000, help=(
        "port to listen on (default 5000); one already in use is refused before anything starts"))

    sv = sub.add_parser("server", help=(
        "run an MLflow tracking server (sqlite + artifact store under --store) that trials "
        "on every node of a Ray cluster log to over HTTP"))
    sv.add_argument("--host", default="127.0.0.1", help=(
        "address to listen on (default 127.0.0.1, this machine only; for a cluster give the "
        "head node's private address or 0.0.0.0, which prints a warning)"))
    sv.add_argument("--port", type=int, default=5000, help=(
        "port to listen on (default 5000); one already in use is refused before anything starts"))
    sv.add_argument("--store", default="runs", help=(
        "folder of the sqlite file (mlflow.db) and the artifacts (mlartifacts/); default "
        "runs/ in the working directory"))
    sv.add_argument("--workers", type=int, default=1, help="web server processes (default 1)")
    sv.add_argument("--auth", action="store_true", help=(
        "require credentials on every request (MLflow's basic-auth app): the account is "
        "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, the same two variables every "
        "trial, `harness report` and `harness ui` send"))
    sv.add_argument("--artifacts-root", help=(
        "where new experiments keep their artifacts, written and read by the trials and "
        "`harness report` directly instead of through the server (fewer requests a trial): "
        "a folder every node mounts at the same path (NFS) or an object store URI such as "
        "s3://bucket/path; default: under --store, served by the server"))
    sv.add_argument("--allowed-hosts", help=(
        "more Host headers to accept, comma-separated, e.g. the head node's host name when "
        "the nodes use it (accepted anyway: localhost, private IP addresses and the --host "
        "address)"))
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
    from harness.reports.stability import build_report, latest_study_run
    from harness.tracking import RUNS_DIR, open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    _check_store_file(uri)
    client = open_store(uri, create=False)
    if args.resamples < 100:
        raise HarnessError(f"--resamples must be >= 100 for a 95% interval, got {args.resamples}")
    if args.bootstrap_seed < 0:
        raise HarnessError(f"--bootstrap-seed must be >= 0, got {args.bootstrap_seed}")
    boot = {"n_resamples": args.resamples, "seed": args.bootstrap_seed}
    studies = args.study or [None]
    if args.pool and len(studies) < 2:
        raise HarnessError("--pool pools a variant's runs across studies: name two or more")
    found = [latest_study_run(client, study) for study in studies]
    if len(found) == 1:
        exp_id, parent_id = found[0]
        name = client.get_experiment(exp_id).name
        out = (Path(args.out) if args.out
               else Path.cwd() / RUNS_DIR / "reports" / f"{name}-{parent_id[:8]}")
        paths = build_report(client, exp_id, parent_id, out, **boot)
    else:
        from harness.reports.merge import merged_frame

        # refuses before anything is written
        frame, sources = merged_frame(client, found, pool=args.pool)
        label = ("pooled-" if args.pool else "merged-") + "+".join(
            src.replace("/", "_") for src, _ in sources)
        out = Path(args.out) if args.out else Path.cwd() / RUNS_DIR / "reports" / label
        paths = build_report(client, *found[0], out, attach=False, frame=frame,
                             sources=sources, pooled=args.pool, **boot)
    print(f"report: {paths['md']}\n        {paths['html']}")
    return 0


def _check_store_file(uri: str) -> None:
    """A command that reads a local store (report, ui) says there is none before opening it."""
    from harness.tracking import sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise HarnessError(f"no tracking store at {uri}; run a study first or pass --tracking-uri")


def _check_port_number(port: int) -> None:
    if not 0 < port < 65536:
        raise HarnessError(f"--port must be 1..65535, got {port}")


def cmd_ui(args) -> int:
    from harness.server import check_port, serve_ui
    from harness.tracking import open_store, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    _check_store_file(uri)
    remote = uri.startswith(("http://", "https://"))
    if not remote:  # a remote server serves its own UI: no port of ours is needed
        _check_port_number(args.port)
        check_port(args.host, args.port)  # before the store is opened or MLflow started
    open_store(uri, create=False)
    if remote:
        print(f"the MLflow server at {uri} serves the UI itself: open {uri} in a browser "
              "(through an SSH tunnel when it listens on 127.0.0.1 of another machine)")
        return 0
    return serve_ui(uri, args.host, args.port)


def cmd_server(args) -> int:
    from harness.server import serve

    _check_port_number(args.port)
    if args.workers < 1:
        raise HarnessError(f"--workers must be >= 1, got {args.workers}")
    return serve(args.store, args.host, args.port, workers=args.workers,
                 allowed_hosts=args.allowed_hosts, auth=args.auth,
                 artifacts_root=args.artifacts_root)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "variants":
            return cmd_variants()
        if args.command == "study":
            from harness.study import run_study

            outcome = run_study(args.file, address=args.address, tracking_uri=args.tracking_uri,
                                max_concurrent=args.max_concurrent,
                                write_report=not args.no_report, resume=args.resume)
            if outcome.interrupted:
                return 130
            if outcome.nothing_measured:  # a failure is a result, but not every one
                what = ({0: "the study recorded no run", 1: "the study's one run failed"}
                        .get(outcome.n_runs, f"all {outcome.n_runs} runs of the study failed"))
                where = ("a run's error is its 'error' tag in MLflow" if outcome.n_runs else
                         "Tune wrote each trial's error under runs/tune/")
                print(f"harness: error: {what}; nothing was measured ({where})", file=sys.stderr)
                return 1
            return 0
        if args.command == "run":
            from harness.allocator import keep_freed_memory
            from harness.config import MAX_SEED
            from harness.study import run_single

            if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
                raise HarnessError(f"--seed must be an integer from 0 to {MAX_SEED}, got {args.seed}")
            keep_freed_memory()  # this process is the trial's, as a study's trial processes are
            run_single(args.file, args.variant, dataset=args.dataset, seed=args.seed,
                       tracking_uri=args.tracking_uri)
            return 0
        if args.command == "report":
            return cmd_report(args)
        if args.command == "ui":
            return cmd_ui(args)
        if args.command == "server":
            return cmd_server(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    return 2


def _stdout_closed() -> bool:
    """True when nobody reads this process's stdout any more (a pipe whose reader exited)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or stdout is no file
        return False


def entry() -> None:
    try:
        code = main()
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
    except BrokenPipeError:
        if not _stdout_closed():  # a broken socket, not our reader: a real error
            raise
        # The reader (`| head`) has what it wanted. 141 = 128 + SIGPIPE, what a tool that
        # SIGPIPE ends reports: a pipeline under `set -o pipefail` sees the output was cut,
        # as it would for `cat` or `yes`. stdout goes to devnull so that Python's own flush
        # at exit does not fail again on what is still buffered.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    sys.exit(code)


if __name__ == "__main__":
    entry()
