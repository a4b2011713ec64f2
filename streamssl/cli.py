"""The ``streamssl`` command line."""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import InputError, StreamSSLError
from .learner.switches import add_switches, switch_settings
from .ssl import OBJECTIVE_NAMES

DESCRIPTION = ("streamssl: learn online from a drifting event stream with few, late labels. "
               "Replay or benchmark a recorded stream, or run the Kafka daemon.")
#: The share of labels revealed when none is given: ``replay``, ``bench`` and ``produce`` alike.
DEFAULT_LABEL_RATE = 0.05


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _natural(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_learner_options(p: argparse.ArgumentParser) -> None:
    """Switches of the learner's mechanisms, shared by the commands that build one."""
    g = p.add_argument_group("learner")
    add_switches(g)  # --ssl, --pseudo, --temporal, --memory, --trees, --linear, --calibrate, --drift, --drift-response, --combiner
    g.add_argument("--objective", choices=OBJECTIVE_NAMES, default=None,
                   help="the encoder's self-supervised objective (default: infonce); naming one turns the "
                   "encoder on unless --no-ssl is given")
    g.add_argument("--threshold", type=_threshold, default=0.99, help="confidence a pseudo-label needs (default 0.99)")
    g.add_argument("--device", default="cpu",
                   help="cpu (default: faster for this learner, see the README), cuda, or auto (CUDA when present)")
    g.add_argument("--threads", type=_positive, default=1,
                   help="torch CPU threads (default 1: the networks are small, and more threads "
                   "only contend with other processes)")
    g.add_argument("--part", type=parse_part_setting, action="append", default=[], metavar="NAME.SETTING=VALUE",
                   help="a setting of one of the learner's parts over what the switches make, repeatable "
                   "(e.g. mlp.max_steps=64; the daemon's learner.parts)")


def parse_part_setting(text: str) -> tuple[str, str, Any]:
    """``NAME.SETTING=VALUE`` as (name, setting, value), the value read as YAML (64, 0.5, true,
    softmax, [4, 16])."""
    import yaml

    target, sep, raw = text.partition("=")
    name, dot, setting = target.strip().partition(".")
    if not sep or not dot or not name or not setting:
        raise argparse.ArgumentTypeError(f"expected NAME.SETTING=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML") from None
    return name, setting.strip(), value


def part_settings(given: list[tuple[str, str, Any]]) -> dict[str, dict[str, Any]]:
    """The ``--part`` settings gathered by part: ``{"mlp": {"max_steps": 64}}``.

    >>> part_settings([("mlp", "max_steps", 64), ("mlp", "hidden", 32), ("memory", "k", 7)])
    {'mlp': {'max_steps': 64, 'hidden': 32}, 'memory': {'k': 7}}
    """
    out: dict[str, dict[str, Any]] = {}
    for name, setting, value in given:
        out.setdefault(name, {})[setting] = value
    return out


def checked_parts(given: list[tuple[str, str, Any]], switches: dict | None = None) -> dict[str, dict[str, Any]]:
    """The ``--part`` settings by part, each checked against its part (and against ``switches``:
    a part switched off takes none); a wrong one is an :class:`InputError`."""
    from .learner import check_parts

    parts = part_settings(given)
    try:
        check_parts(parts, switches or {})
    except ValueError as exc:
        raise InputError(f"--part: {exc}") from None
    return parts


def _columns(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


def add_input_options(p: argparse.ArgumentParser) -> None:
    """How a recorded file's columns are read (replay, bench, produce)."""
    g = p.add_argument_group("columns")
    g.add_argument("--label-column", default=None, metavar="NAME",
                   help="the label column (default: a column named 'label', else the last CSV column)")
    g.add_argument("--categorical", type=_columns, default=(), metavar="COLS",
                   help="comma-separated columns to read as categories even if they look numeric "
                   "(default: inferred: a column of text is categorical)")
    g.add_argument("--drop-columns", type=_columns, default=(), metavar="COLS",
                   help="comma-separated columns to ignore (ids, timestamps)")
    g.add_argument("--key-column", default=None, metavar="COL",
                   help="each event's entity: it gets its own temporal context, as the daemon's key_field")


def file_options(args: argparse.Namespace):
    from .sources.file import FileOptions

    return FileOptions(args.label_column, args.categorical, args.drop_columns, args.key_column)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="streamssl", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"streamssl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "replay", help="prequential test-then-train replay of a recorded stream",
        description="Replay a recorded stream (CSV with a header row, or JSONL; gzip or not): each micro-batch "
        "is predicted, then learned. Columns of text are categorical, empty cells and NA are missing values "
        "(imputed); the label is the column named 'label', else the last CSV column (--label-column). Without "
        "PATH, replays the bundled sample (the first 5,000 events of Elec2).",
    )
    p.add_argument("path", nargs="?", type=Path, help="recorded stream (default: the bundled Elec2 sample)")
    p.add_argument("--label-rate", type=_rate, default=DEFAULT_LABEL_RATE,
                   help=f"fraction of events whose label is revealed (default {DEFAULT_LABEL_RATE})")
    p.add_argument("--label-delay", type=_natural, default=0, help="a label is revealed this many events later (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the label mask and the learner (default 0)")
    p.add_argument("--limit", type=_natural, default=None, help="stop after N events")
    p.add_argument("--batch-size", type=_positive, default=64, help="micro-batch size (default 64)")
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON to FILE")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port while running")
    p.add_argument("--dead-letter", type=Path, default=None, help="write rejected rows with their reason to FILE (JSON lines)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_input_options(p)
    add_learner_options(p)

    b = sub.add_parser(
        "bench", help="streamssl and peers side by side on one recorded stream, same labels",
        description="Run streamssl (and its variants) and peer learners through the same prequential protocol "
        "as 'replay', with the same seeded label mask and delay, each model in a fresh process.",
    )
    b.add_argument("path", nargs="?", type=Path, help="recorded stream (default: the bundled Elec2 sample)")
    b.add_argument("--label-rate", type=_rate, default=DEFAULT_LABEL_RATE,
                   help=f"fraction of events whose label is revealed (default {DEFAULT_LABEL_RATE})")
    b.add_argument("--label-delay", type=_natural, default=0, help="a label is revealed this many events later (default 0)")
    b.add_argument("--seed", type=int, default=0, help="seed of the label mask and the learners (default 0)")
    b.add_argument("--models", default=None,
                   help="comma-separated model names (default: "
                   "streamssl,streamssl-ssl,streamssl-pseudo,river-arf,river-hat,river-lr,river-nb,no-change)")
    b.add_argument("--peer-features", choices=["raw", "same", "both"], default="both",
                   help="peers on the raw features, on streamssl's temporal context stage too (NAME+context), "
                   "or both rows (default both)")
    b.add_argument("--limit", type=_natural, default=None, help="stop after N events")
    b.add_argument("--batch-size", type=_positive, default=64, help="micro-batch size (default 64)")
    b.add_argument("--threads", type=_positive, default=1, help="torch CPU threads per model (default 1)")
    b.add_argument("--part", type=parse_part_setting, action="append", default=[], metavar="NAME.SETTING=VALUE",
                   help="a setting of the learner's parts for every streamssl model, repeatable (as on replay; "
                   "a part a model does not have stays off)")
    b.add_argument("--window", type=_positive, default=None,
                   help="scored events per point of the plotted accuracy (default: a twentieth of the stream, "
                   "50 to 1000)")
    b.add_argument("--json", type=Path, default=None, help="write the results as JSON to FILE")
    b.add_argument("--plot", type=Path, default=None, help="draw accuracy over time for every model to FILE.png")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    add_input_options(b)

    r = sub.add_parser(
        "run", help="the daemon: consume events from Kafka, predict, learn from delayed labels",
        description="Consume events (and delayed labels) from Kafka in a consumer group, send one prediction per "
        "event, learn, dead-letter bad input, checkpoint atomically, serve /metrics /healthz /readyz. "
        "SIGTERM/SIGINT stop it cleanly after a final checkpoint. Environment variables STREAMSSL_<SECTION>_<KEY> "
        "override the config file.",
    )
    r.add_argument("--config", type=Path, required=True, help="YAML config file")
    r.add_argument("--max-events", type=_positive, default=None, help="stop cleanly after N event messages")
    r.add_argument("--timeout", type=float, default=None, help="stop cleanly after S seconds")
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="JSON log level on stderr (default info)")

    q = sub.add_parser(
        "produce", help="replay a recorded stream into Kafka: events now, their labels later",
        description="Send each record of a recorded stream (CSV/JSONL, gzip or not) to TOPIC as a JSON event "
        '{"id", "features", "timestamp"}, and a seeded share of labels as {"id", "label"} to the labels topic, '
        "after a delay. SIGTERM or Ctrl-C ends the events early; the labels of those sent still follow at their "
        "delay, then the summary is printed (a second signal aborts).",
    )
    q.add_argument("path", nargs="?", type=Path, help="recorded stream (default: the bundled Elec2 sample)")
    q.add_argument("--topic", required=True, help="topic for the events")
    q.add_argument("--labels-topic", default=None, help="topic for the labels (default: send no labels)")
    q.add_argument("--label-rate", type=_rate, default=DEFAULT_LABEL_RATE,
                   help=f"share of events whose label is sent (default {DEFAULT_LABEL_RATE})")
    q.add_argument("--label-delay-s", type=float, default=0.0, help="seconds between an event and its label (default 0)")
    q.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    q.add_argument("--seed", type=int, default=0, help="seed of the label mask (default 0)")
    q.add_argument("--limit", type=_natural, default=None, help="stop after N events")
    q.add_argument("--repeat", type=_positive, default=1, help="send the stream N times over, ids still unique (default 1)")
    q.add_argument("--layout", choices=["object", "array"], default="object",
                   help="features as an object {name: value} (default) or an array")
    q.add_argument("--id-prefix", default="", help="prefix of the event ids (default none: ids are row numbers)")
    q.add_argument("--bootstrap-servers", default=None,
                   help="Kafka bootstrap servers (default: the config's, else $STREAMSSL_KAFKA_BOOTSTRAP_SERVERS, "
                   "else localhost:9092)")
    q.add_argument("--config", type=Path, default=None, help="take Kafka connection and security settings from this "
                   "daemon config")
    add_input_options(q)
    return parser


def _check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name) if name != "auto" else None
    except RuntimeError:
        raise InputError(f"unknown device {name!r} (use auto, cpu or cuda)") from None
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but CUDA is not available here")


def _check_writable(path: Path | None, flag: str) -> None:
    if path is not None and not path.parent.is_dir():
        raise InputError(f"{flag} {path}: directory {path.parent} does not exist")


def make_learner(args: argparse.Namespace):
    from .learner import build_learner

    _check_device(args.device)
    switches = switch_settings(vars(args), "flag")
    parts = checked_parts(args.part, switches)
    return build_learner(args.threshold, args.device, args.seed, args.threads, args.objective,
                         parts=parts or None, **switches)


def _stdout_console():
    """Rich's console for results; piped output gets 120 columns rather than rich's 80, so that
    tables are not cropped in logs."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=120)


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .metrics import LearnerMetrics
    from .replay.report import progress_bar, summary_table
    from .replay.run import DeadLetters, ReplayRun, bundled_sample, count_records

    path = args.path or bundled_sample()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    _check_writable(args.json, "--json")
    _check_writable(args.dead_letter, "--dead-letter")
    err = Console(stderr=True)
    model = make_learner(args)
    metrics = LearnerMetrics()
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        try:
            start_http_server(args.metrics_port, registry=metrics.registry)
        except OSError as exc:
            raise InputError(f"--metrics-port {args.metrics_port}: {exc.strerror or exc}") from None
    dead = DeadLetters(args.dead_letter, sys.stderr)
    run = ReplayRun(path, model, args.label_rate, args.label_delay, args.seed, args.batch_size, args.limit, dead,
                    file_options(args))
    total = count_records(path, args.limit)
    with progress_bar(err, total, disable=args.quiet) as (progress, task):
        scored = {"correct": 0, "wrong": 0}

        def on_batch(result):
            s = result.summary
            for outcome, n in (("correct", s.pseudo_labels_correct), ("wrong", s.pseudo_labels_scored - s.pseudo_labels_correct)):
                metrics.pseudo_scored.labels(outcome=outcome).inc(n - scored[outcome])
                scored[outcome] = n
            metrics.served(result.confidence)
            metrics.learned(model, result.labelled, result.size - result.labelled, result.seconds, s.accuracy)
            progress.update(task, advance=result.size, accuracy=result.summary.accuracy)

        summary = run.execute(on_batch)
    result = summary.to_json()
    _stdout_console().print(summary_table(path, result, args, dead, model, run.columns))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .replay.bench import DEFAULT_MODELS, BenchSettings, available_models, bench, bench_json
    from .replay.report import bench_table
    from .replay.run import bundled_sample, count_records

    path = args.path or bundled_sample()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    from .replay.bench import with_peer_features

    models = DEFAULT_MODELS if args.models is None else [m.strip() for m in args.models.split(",") if m.strip()]
    models = with_peer_features(models, args.peer_features)
    unknown = [m for m in models if m not in available_models()]
    if unknown or not models:
        raise InputError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(available_models())}")
    _check_writable(args.json, "--json")
    _check_writable(args.plot, "--plot")
    from .replay.plot import default_window

    parts = checked_parts(args.part)
    total = count_records(path, args.limit)
    settings = BenchSettings(args.label_rate, args.label_delay, args.seed, args.batch_size, args.limit,
                             args.threads, args.window or default_window(total), file_options(args), parts)
    err = Console(stderr=True)
    progress = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("accuracy {task.fields[accuracy]:.3f}"), TimeRemainingColumn(),
                        console=err, disable=args.quiet)
    with progress:
        tasks = {m: progress.add_task(m, total=total, accuracy=0.0) for m in models}

        def on_progress(model: str, events: int, accuracy: float) -> None:
            progress.update(tasks[model], completed=events, accuracy=accuracy)

        runs = bench(path, models, settings, on_progress)
    for run in runs:
        if run.error:
            err.print(f"[red]{run.model} failed:[/red] {run.error.splitlines()[0]}")
    ok = [r for r in runs if r.error is None]
    if not ok:
        raise StreamSSLError(f"{path}: every model failed")
    rejected = ok[0].result.get("rows_rejected") or {}
    if rejected:
        err.print(f"[yellow]warning:[/yellow] {sum(rejected.values()):,} rows rejected "
                  f"({', '.join(f'{k}: {v}' for k, v in rejected.items())}); 'streamssl replay --dead-letter FILE' "
                  "lists them")
    _stdout_console().print(bench_table(path, settings, ok))
    if args.json:
        args.json.write_text(json.dumps(bench_json(path, settings, runs), indent=2) + "\n")
    if args.plot:
        from .replay.plot import accuracy_plot

        title = f"{path.name} · labels {settings.label_rate:g} · delay {settings.label_delay} · seed {settings.seed}"
        accuracy_plot(ok, args.plot, title, settings.window)
    return 0 if len(ok) == len(runs) else 1


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import logs
    from .config import load_config
    from .daemon.service import Daemon

    if args.timeout is not None and args.timeout <= 0:
        raise InputError("--timeout must be positive")
    config = load_config(args.config)
    log = logs.setup(args.log_level)
    try:
        return Daemon(config, log=log).run(max_events=args.max_events, timeout_s=args.timeout)
    except InputError:
        raise
    except Exception as exc:  # the daemon cannot go on: say why, exit 1, restart resumes from the checkpoint
        log.critical("failed", exc_info=True, extra={"fields": {"error": f"{type(exc).__name__}: {exc}"}})
        return 1


def _kafka_options(args: argparse.Namespace) -> dict:
    import os

    from .config import load_config

    if args.config is not None:
        options = load_config(args.config).kafka.client_options()
    else:
        servers = os.environ.get("STREAMSSL_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
        options = {"bootstrap_servers": servers.split(","), "client_id": "streamssl"}
    if args.bootstrap_servers:
        options["bootstrap_servers"] = args.bootstrap_servers.split(",")
    return options


def cmd_produce(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from .replay.produce import produce
    from .replay.run import DeadLetters, bundled_sample
    from .stopping import StopFlag

    path = args.path or bundled_sample()
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if args.rate is not None and args.rate <= 0:
        raise InputError("--rate must be positive")
    if args.label_delay_s < 0:
        raise InputError("--label-delay-s must be >= 0")
    options = _kafka_options(args)
    try:
        producer = KafkaProducer(acks="all", linger_ms=5, **options)
    except KafkaError as exc:
        raise InputError(f"cannot reach Kafka at {','.join(options['bootstrap_servers'])}: {exc}") from None
    dead = DeadLetters(None, sys.stderr)
    stop = StopFlag()  # (set by a signal handler: a threading.Event there can deadlock)

    def stop_sending(signum, frame) -> None:  # the first SIGTERM/SIGINT ends the stream, a second aborts
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    main_thread = threading.current_thread() is threading.main_thread()  # (only there can signals be caught)
    handlers = {sig: signal.signal(sig, stop_sending) for sig in (signal.SIGTERM, signal.SIGINT)} if main_thread else {}
    try:
        summary = produce(path, producer, args.topic, args.labels_topic, args.label_rate, args.label_delay_s,
                          args.rate, args.seed, args.limit, args.layout, args.id_prefix, args.repeat, on_bad=dead,
                          options=file_options(args), stop=stop)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        producer.close()
    print(json.dumps({"path": str(path), "topic": args.topic, "labels_topic": args.labels_topic,
                      "feature_names": summary.feature_names, **summary.to_json()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None and hasattr(signal, "SIGUSR1"):  # run as a program: SIGUSR1 prints every thread's stack
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"replay": cmd_replay, "bench": cmd_bench, "run": cmd_run, "produce": cmd_produce}[args.command](args)
    except (InputError, StreamSSLError) as exc:
        print(f"streamssl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamssl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
